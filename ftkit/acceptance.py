"""The guide's acceptance checklist (验收检查清单), checked from the artifacts on disk, never from flags.

Each item reads its own evidence and says PASS, FAIL, WARN (a person should look) or SKIP (its
evidence depends on an item that failed), with the evidence (numbers, files) and, when it is not a
PASS, what to do. Cross-checks make a faked run fail: metrics against the raw training log, the
adapter against the digest the training run recorded, the evaluated test file against the hash the
data stage recorded, the Modelfile against the renderer.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit import prompts
from ftkit.artifacts import Paths
from ftkit.config import defaults
from ftkit.io import sha256_file
from ftkit.prepare import MIN_TRAIN_RECORDS, too_few_training_records

VALIDATION_SAMPLE = 32  # records of the validation split re-measured by acceptance
# a folder where re-measurements are kept by the digests of every file they read, and reused while those digests
# hold (the test suite sets it: its tamper tests change one file each and re-check every item). Unset, every check
# measures again.
REUSE_ENV = "FTKIT_REUSE_MEASUREMENTS"
DEFAULT_MIN_TOKENS_PER_SECOND = defaults.MIN_TOKENS_PER_SEC
SECTIONS = {"data": "数据准备 Data", "train": "模型训练 Training", "eval": "模型评估 Evaluation",
            "deploy": "模型部署 Deployment", "docs": "文档记录 Documentation"}


@dataclass
class Thresholds:
    min_records: int = MIN_TRAIN_RECORDS
    min_tokens_per_second: float = DEFAULT_MIN_TOKENS_PER_SECOND

    @property
    def overridden(self) -> list[str]:
        notes = []
        if self.min_records != MIN_TRAIN_RECORDS:
            notes.append(f"MIN_RECORDS={self.min_records} (the checklist asks for {MIN_TRAIN_RECORDS})")
        if self.min_tokens_per_second != DEFAULT_MIN_TOKENS_PER_SECOND:
            notes.append(f"MIN_TOKENS_PER_SEC={self.min_tokens_per_second:g} (default {DEFAULT_MIN_TOKENS_PER_SECOND:g})")
        return notes


@dataclass
class Item:
    section: str
    key: str
    title: str
    status: str = "PASS"
    evidence: str = ""
    fix: str = ""
    details: dict = field(default_factory=dict)


def _files_under(*paths: Path) -> list[Path]:
    """Every file at or under `paths`, each once (a Modelfile's GGUF lies in the folder named beside it)."""
    return sorted({f.resolve() for p in paths for f in ([p] if p.is_file() else p.rglob("*") if p.is_dir() else [])
                   if f.is_file()})


def measured_once(kind: str, reads: list[Path], settings: dict, measure: Callable[[], dict]) -> dict:
    """measure(), or its result kept under REUSE_ENV by a key of `kind`, `settings` and the digest of every file
    under `reads` (marked "reused": True): a file that changed measures again. Without REUSE_ENV, always measure()."""
    folder = os.environ.get(REUSE_ENV)
    if not folder:
        return measure()
    from ftkit.io import write_json_atomic

    key = hashlib.sha256(json.dumps([kind, [(str(f), sha256_file(f)) for f in _files_under(*reads)], settings],
                                    sort_keys=True, default=str).encode()).hexdigest()[:32]
    kept = Path(folder) / f"{kind}-{key}.json"
    if kept.is_file():
        return {**json.loads(kept.read_text(encoding="utf-8")), "reused": True}
    result = measure()
    write_json_atomic(kept, result)
    return result


class Fail(Exception):
    def __init__(self, evidence: str, fix: str = "", status: str = "FAIL"):
        super().__init__(evidence)
        self.evidence, self.fix, self.status = evidence, fix, status


def _json(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise Fail(f"{path} is missing", fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise Fail(f"{path} is not valid JSON ({err.msg})", fix) from None


def _jsonl(path: Path, fix: str) -> list[dict]:
    if not path.is_file():
        raise Fail(f"{path} is missing", fix)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise Fail(f"{path}:{n} is not valid JSON", fix) from None
    return rows


class Checker:
    """One method per checklist line. Shared evidence is loaded lazily and once."""

    def __init__(self, paths: Paths, thresholds: Thresholds, n_gpu_layers: int = 0):
        self.paths, self.thresholds = paths, thresholds
        self.n_gpu_layers = n_gpu_layers  # for every llama.cpp load: the speed is measured where the model will run
        self.gguf_loaded: bool | None = None

    # --- 数据准备 -----------------------------------------------------------------------------
    def data_min_records(self) -> str:
        train = _jsonl(self.paths.split("train"), "run `make data`")
        note = " [threshold overridden]" if self.thresholds.min_records != MIN_TRAIN_RECORDS else ""
        shortfall = too_few_training_records(len(train), self.thresholds.min_records)
        if shortfall:
            raise Fail(f"{shortfall}{note} ({self.paths.split('train')})",
                       "add data: the guide recommends 100-500 high-quality Q&A pairs at least")
        return f"{len(train)} training records >= {self.thresholds.min_records}{note}"

    def data_well_formed(self) -> str:
        checked, bad = 0, []
        for split in ("train", "validation", "test"):
            path = self.paths.split(split)
            if not path.is_file():
                continue  # a missing split is the next item's finding
            for n, record in enumerate(_jsonl(path, "run `make data`"), start=1):
                checked += 1
                ok = all(isinstance(record.get(k), str) and record[k].strip() for k in ("instruction", "output"))
                ok = ok and isinstance(record.get("input", ""), str) and record.get("messages", [{}])[-1].get("role") == "assistant"
                if not ok:
                    bad.append(f"{path.name}:{n}")
        if bad:
            raise Fail(f"{len(bad)} malformed record(s), e.g. {', '.join(bad[:3])}", "re-run `make data` on the raw data")
        if not checked:
            raise Fail("no split files to check", "run `make data`")
        return f"{checked} records have instruction/input/output (and messages)"

    def data_splits(self) -> str:
        from ftkit.loading import conversation_of
        from ftkit.prepare import normalise, question_key

        stats = _json(self.paths.stats, "run `make data`")
        keys, counts = {}, {}
        for split in ("train", "validation", "test"):
            path = self.paths.split(split)
            rows = _jsonl(path, "run `make data`")
            if not rows:
                raise Fail(f"{path} is empty", "more data, or smaller --val-ratio/--test-ratio")
            recorded = stats.get("outputs", {}).get(split, {}).get("sha256")
            if recorded and recorded != sha256_file(path):
                raise Fail(f"{path} changed after `make data` (sha256 differs from {self.paths.stats})",
                           "re-run `make data`; never edit the splits by hand")
            keys[split] = {normalise(question_key(conversation_of(r))) for r in rows}
            counts[split] = len(rows)
        for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
            if shared := keys[a] & keys[b]:
                raise Fail(f"{len(shared)} question(s) appear in both {a} and {b}", "re-run `make data` (it dedups before splitting)")
        return f"train/validation/test = {counts['train']}/{counts['validation']}/{counts['test']}, disjoint"

    # --- 模型训练 -----------------------------------------------------------------------------
    def _manifest(self) -> dict:
        return _json(Path(self.paths.model_dir) / "run_manifest.json", "run `make train`")

    def _log(self) -> list[dict]:
        return _jsonl(Path(self.paths.model_dir) / "train_log.jsonl", "run `make train`")

    def train_config(self) -> str:
        args = self._manifest().get("arguments", {})
        checks = {"epochs": (0.5, 50), "learning_rate": (1e-6, 1e-2), "lora_r": (1, 256), "lora_alpha": (1, 1024),
                  "batch_size": (1, 1024)}
        problems = [f"{k}={args.get(k)} outside [{lo:g}, {hi:g}]" for k, (lo, hi) in checks.items()
                    if not isinstance(args.get(k), int | float) or not lo <= args[k] <= hi]
        ratio = args.get("lora_alpha", 0) / max(1, args.get("lora_r", 1))
        if not problems and not 0.25 <= ratio <= 8:
            problems.append(f"lora_alpha/lora_r = {ratio:g} outside [0.25, 8]")
        summary = ", ".join(f"{k}={args.get(k)}" for k in checks)
        if problems:
            raise Fail("; ".join(problems), "see configs/*.yaml for tested settings")
        return summary

    def train_loss_fell(self) -> str:
        from ftkit.train_outputs import window_mean

        losses = [e["loss"] for e in self._log() if "loss" in e]
        if len(losses) < 2:
            raise Fail("fewer than 2 training losses in train_log.jsonl", "train for more steps")
        first, last = window_mean(losses, True), window_mean(losses, False)
        metrics = _json(Path(self.paths.model_dir) / "metrics.json", "run `make train`")
        if not math.isclose(metrics.get("train_loss_last_window", math.nan), last, rel_tol=1e-6):
            raise Fail("metrics.json disagrees with train_log.jsonl", "re-run `make train`; do not edit its outputs")
        if last >= first:
            raise Fail(f"training loss did not fall: {first:.4f} -> {last:.4f} (first vs last window)",
                       "raise the learning rate or train longer; check the data")
        return f"training loss {first:.4f} -> {last:.4f} (mean of first vs last window of {len(losses)} steps)"

    def train_val_loss_fell(self) -> str:
        evals = [e for e in self._log() if "eval_loss" in e]
        if not evals:
            raise Fail("no validation loss in train_log.jsonl", "train with --val-data")
        metrics = _json(Path(self.paths.model_dir) / "metrics.json", "run `make train`")
        recorded = [e["eval_loss"] for e in metrics.get("eval_loss_per_epoch", [])]
        if [round(x, 6) for x in recorded] != [round(e["eval_loss"], 6) for e in evals]:
            raise Fail("metrics.json disagrees with train_log.jsonl", "re-run `make train`; do not edit its outputs")
        values = [e["eval_loss"] for e in evals]
        if len(values) < 2:
            raise Fail(f"only one validation loss ({values[0]:.4f}): cannot tell whether it fell",
                       "evaluate at least twice (e.g. --epochs 2 or more)", status="WARN")
        best = min(range(len(values)), key=values.__getitem__)
        trail = " -> ".join(f"{v:.4f}" for v in values)
        if best == 0:
            raise Fail(f"validation loss never fell below the first evaluation: {trail}",
                       "lower the learning rate, check the data, or stop after the first epoch")
        remeasured = self._remeasure_validation_loss(metrics.get("final_eval_loss"))
        if values[-1] > values[best]:
            raise Fail(f"validation loss fell ({trail}) but rose after evaluation {best + 1} (epoch "
                       f"{evals[best].get('epoch')}): likely overfitting; {remeasured}",
                       "use fewer epochs or --early-stopping-patience 1", status="WARN")
        return f"validation loss {trail}; {remeasured}"

    def _remeasure_validation_loss(self, logged) -> str:
        """The adapter's loss on a fixed sample of the validation split, measured now, against the logged
        final validation loss: a consistent set of edited logs does not pass. Tolerance: 5% (the trainer
        averages per-batch means, this is a token mean) or 3 standard errors of the sample, the larger."""
        import statistics

        from ftkit.inference import load_models
        from ftkit.loading import conversation_of

        if not isinstance(logged, int | float):
            raise Fail("metrics.json has no final validation loss", "re-run `make train` with --val-data")
        args = self._manifest().get("arguments", {})
        split = Path(args.get("val_data") or self.paths.split("validation"))
        records = _jsonl(split, "run `make data`")
        sample = records[:: max(1, len(records) // VALIDATION_SAMPLE)][:VALIDATION_SAMPLE]
        adapter_dir = Path(self.paths.model_dir) / "lora_adapter"

        def measure() -> dict:
            started = time.perf_counter()
            tokenizer, _, adapter = load_models(args["base_model"], str(adapter_dir), with_base=False,
                                                family=args.get("family"))
            pairs = [(r.prompt_ids, r.answer_ids) for r in (prompts.render_ids(conversation_of(x), tokenizer) for x in sample)
                     if len(r.input_ids) <= args.get("max_length", 10**9)]
            return {"losses": adapter.answer_losses(pairs), "weights": [len(a) for _, a in pairs],
                    "seconds": time.perf_counter() - started}
        base = Path(args["base_model"])
        run = measured_once("validation-loss", [split, adapter_dir, *([base] if base.is_dir() else [])],
                            {"base_model": args["base_model"], "family": args.get("family"),
                             "max_length": args.get("max_length"), "sample": VALIDATION_SAMPLE}, measure)
        losses, weights = run["losses"], run["weights"]
        measured = sum(x * w for x, w in zip(losses, weights, strict=True)) / sum(weights)
        spread = statistics.stdev(losses) / math.sqrt(len(losses)) if len(losses) > 1 else 0.0
        tolerance = max(0.05 * abs(logged), 3 * spread)
        when = "earlier on these same files (reused)" if run.get("reused") else "now"
        text = (f"re-measured {when} on {len(weights)} validation records: {measured:.4f} vs logged {logged:.4f} "
                f"(tolerance {tolerance:.4f}, {run['seconds']:.1f} s)")
        if abs(measured - logged) > tolerance:
            raise Fail(f"the adapter does not reproduce its logged validation loss: {text}",
                       "re-run `make train`; do not edit its outputs")
        return text

    def train_adapter(self) -> str:
        from safetensors.torch import load_file

        from ftkit.train_outputs import adapter_digest

        manifest = self._manifest()
        adapter = Path(self.paths.model_dir) / "lora_adapter"
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if not (adapter / name).is_file():
                raise Fail(f"{adapter / name} is missing", "run `make train`")
        if manifest.get("status") != "complete":
            raise Fail(f"run_manifest.json says the run is {manifest.get('status')!r}", "re-run `make train`")
        if manifest.get("adapter") != adapter_digest(adapter):
            raise Fail("the adapter differs from the one this training run recorded", "re-run `make train`")
        weights = load_file(adapter / "adapter_model.safetensors")
        config = json.loads((adapter / "adapter_config.json").read_text())
        ranks = {t.shape[0] for k, t in weights.items() if "lora_A" in k}
        if ranks != {config.get("r")}:
            raise Fail(f"adapter weights have rank {sorted(ranks)} but its config says r={config.get('r')}", "re-run `make train`")
        return f"{adapter}: {len(weights)} tensors, r={config.get('r')}, digest matches run_manifest.json"

    # --- 模型评估 -----------------------------------------------------------------------------
    def _summary(self) -> dict:
        return _json(self.paths.summary, "run `make eval`")

    def eval_test_split(self) -> str:
        summary = self._summary()
        stats = _json(self.paths.stats, "run `make data`")
        recorded = stats.get("outputs", {}).get("test", {})
        evaluated = summary.get("test_data", {})
        if not recorded.get("sha256") or evaluated.get("sha256") != recorded["sha256"]:
            raise Fail(f"the evaluation ran on {evaluated.get('path')} whose sha256 is not the test split `make data` wrote",
                       "re-run `make eval` after `make data`")
        return f"{evaluated.get('records')} test records evaluated; sha256 {recorded['sha256'][:12]}… matches the data stage"

    def eval_metrics(self) -> str:
        aggregate = self._summary().get("aggregate", {})
        missing = [f"{m}.{k}" for m in ("base", "finetuned") for k in ("loss", "rouge1_char", "rougeL_char", "bleu")
                   if not isinstance(aggregate.get(m, {}).get(k), int | float) or math.isnan(aggregate[m][k])]
        if missing:
            raise Fail(f"missing metrics: {', '.join(missing)}", "re-run `make eval` (with the base model)")
        tuned = aggregate["finetuned"]
        return (f"fine-tuned: loss {tuned['loss']:.4f}, ROUGE-1/L (char) {tuned['rouge1_char']:.3f}/{tuned['rougeL_char']:.3f}, "
                f"BLEU {tuned['bleu']:.2f} (base and per-record values in {self.paths.eval_output})")

    def eval_human(self) -> str:
        summary = self._summary()
        human = summary.get("human_evaluation")
        if not human:
            raise Fail("no human ratings imported (base vs fine-tuned comparison is automatic only)",
                       "make eval HUMAN_SHEET=reports/human_eval.csv, rate it, then make eval RATINGS=reports/human_eval.csv",
                       status="WARN")
        return (f"{human['rows']} rated blind: fine-tuned preferred {100 * human['win_rate']['finetuned']:.0f}%, "
                f"mean score {human['mean_score']['base']:.2f} -> {human['mean_score']['finetuned']:.2f}")

    def _general(self) -> dict:
        return _json(self.paths.general, "run `make eval-general`")

    def eval_forgetting(self) -> str:
        """General ability kept: fine-tuned vs base on the multiple-choice check, recomputed here from each model's
        recorded answers against the benchmark as it lies now (an edited accuracy is caught), with every model
        tied to this run (the adapter's digest, each GGUF's sha256)."""
        from ftkit import general_eval
        from ftkit.train_outputs import adapter_digest

        fix = "run `make eval-general`"
        result, path = self._general(), self.paths.general.name
        bench, models = result.get("benchmark", {}), result.get("models", {})
        benchmark = general_eval.read_benchmark(bench.get("path", "?"), bench.get("per_subject", 0), bench.get("seed", 0))
        if benchmark.digest(bench.get("shots", 0)) != bench.get("digest"):
            raise Fail(f"{path}: the benchmark {bench.get('path')} changed after the check", fix)
        missing = [m for m in ("base", "fine-tuned") if m not in models]
        if missing:
            raise Fail(f"{path} has no {' and no '.join(missing)} model", fix)
        for name, entry in models.items():
            figures = general_eval.accuracy_figures(benchmark, entry.get("choices", ""))
            if abs(figures["accuracy"] - entry.get("accuracy", -1)) > 1e-9:
                raise Fail(f"{path}: {name}'s accuracy {entry.get('accuracy')} is not what its recorded answers give "
                           f"({figures['accuracy']:.4f})", fix)
        adapter = adapter_digest(Path(self.paths.model_dir) / "lora_adapter")
        if models["fine-tuned"].get("adapter_sha256") != adapter:
            raise Fail(f"{path}: the fine-tuned model checked is not the adapter lying there now", fix)
        quant = _json(Path(self.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
        for quant_type, info in quant.get("files", {}).items():
            file = Path(self.paths.gguf_dir) / Path(info["path"]).name
            if quant_type not in models:
                raise Fail(f"{path}: {file.name} was not checked", fix)
            if models[quant_type].get("sha256") != self._sha256(file):
                raise Fail(f"{path}: the {quant_type} checked is not the file {file.name} lying there now", fix)
        margins = result.get("margins", general_eval.DEFAULT_MARGINS)
        tuned = general_eval.difference(benchmark, models["fine-tuned"]["choices"], models["base"]["choices"])
        status, text = general_eval.forgetting_verdict(tuned, margins)
        text += f" on {len(benchmark.questions)} questions ({bench.get('path')})"
        gguf = [f"{q} - F16 {100 * general_eval.difference(benchmark, m['choices'], models['F16']['choices'])['difference']:+.1f}"
                for q, m in models.items() if m.get("kind") == "gguf" and q != "F16" and "F16" in models]
        text += f"; {', '.join(gguf)} points" if gguf else ""
        if status != "PASS":
            raise Fail(text, "fewer epochs or a lower learning rate, a smaller LoRA rank, or general data mixed into "
                       "the training set", status=status)
        return text

    # --- 模型部署 -----------------------------------------------------------------------------
    def _modelfile_target(self) -> Path:
        modelfile = Path(self.paths.gguf_dir) / "Modelfile"
        if not modelfile.is_file():
            raise Fail(f"{modelfile} is missing", "run `make gguf`")
        for line in modelfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("FROM "):
                return (modelfile.parent / line[5:].strip()).resolve()
        raise Fail(f"{modelfile} has no FROM line", "run `make gguf`")

    def deploy_loads(self) -> str:
        from llama_cpp import Llama
        from transformers import AutoModelForCausalLM

        from ftkit.llama_server import llama_thread_args

        self.gguf_loaded = False
        merged = Path(self.paths.model_dir) / "merged_model"
        report = _json(Path(self.paths.model_dir) / "merge_report.json", "run `make merge`")
        if not report.get("verification", {}).get("passed"):
            raise Fail("merge_report.json: the merged model did not match base + adapter", "re-run `make merge`")
        try:
            AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)
        except Exception as err:  # noqa: BLE001 - any failure to load is the finding
            raise Fail(f"{merged} does not load ({str(err).splitlines()[0]})", "re-run `make merge`") from None
        target = self._modelfile_target()
        try:
            Llama(model_path=str(target), n_ctx=256, n_gpu_layers=self.n_gpu_layers, verbose=False, **llama_thread_args())
        except Exception as err:  # noqa: BLE001
            raise Fail(f"{target.name} does not load in llama.cpp ({str(err).splitlines()[0]})", "re-run `make gguf`") from None
        quant = _json(Path(self.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
        if not quant.get("verification", {}).get("passed"):
            raise Fail("quant_report.json: the GGUF does not reproduce the merged model", "re-run `make gguf`")
        self.gguf_loaded = True
        return f"{merged.name} (HF) and {target.name} (llama.cpp) load; merge and GGUF verifications passed"

    def deploy_speed(self) -> str:
        from llama_cpp import Llama

        from ftkit.llama_server import llama_thread_args

        if not self.gguf_loaded:
            raise Fail("not measured: the GGUF did not load (see the loading item)", "", status="SKIP")
        target = self._modelfile_target()
        llm = Llama(model_path=str(target), n_ctx=512, n_gpu_layers=self.n_gpu_layers, verbose=False, seed=0,
                    **llama_thread_args())
        tokenizer, _ = self._family()
        ids = prompts.render_ids(prompts.from_alpaca({"instruction": "中国的首都是哪里？"}), tokenizer).prompt_ids
        tokens, started = 0, time.perf_counter()
        for _ in llm.generate(ids, temp=0.0, top_k=1):
            tokens += 1  # decode speed: EOS is not a reason to stop measuring
            if tokens == 64:
                break
        rate = tokens / (time.perf_counter() - started)
        note = " [threshold overridden]" if self.thresholds.min_tokens_per_second != DEFAULT_MIN_TOKENS_PER_SECOND else ""
        if rate < self.thresholds.min_tokens_per_second:
            raise Fail(f"{rate:.1f} tokens/s < {self.thresholds.min_tokens_per_second:g}{note} ({target.name}, measured now)",
                       "use a smaller quantization (GGUF_TYPES=Q4_K_M) or a GPU (n_gpu_layers)")
        where = f"{self.n_gpu_layers if self.n_gpu_layers >= 0 else 'all'} layer(s) offloaded" if self.n_gpu_layers else "CPU"
        return f"{rate:.1f} tokens/s >= {self.thresholds.min_tokens_per_second:g}{note} ({target.name}, measured now, {where})"

    def deploy_quality(self) -> str:
        summary = self._summary()
        ci = summary.get("primary_delta_ci")
        if not ci:
            raise Fail("no base vs fine-tuned comparison in the evaluation summary", "run `make eval` with the base model")
        metric = summary.get("primary_metric", "rougeL_char")
        text = f"{metric} delta {ci['delta']:+.4f}, 95% CI [{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}]"
        loss = summary.get("deltas", {}).get("loss")
        text += f"; reference loss delta {loss:+.4f}" if loss is not None else ""
        if ci["delta"] <= 0:
            raise Fail(f"the fine-tuned model is not better: {text}", "more or better data, other hyperparameters")
        if ci["ci_low"] <= 0:
            raise Fail(f"better on average but not clearly: {text}", "more test data narrows the interval", status="WARN")
        return text

    def _family(self):
        """The chat family of the merged model (the training run's --family, if one was given)."""
        from ftkit import families
        from ftkit.loading import load_tokenizer

        if getattr(self, "_tokenizer", None) is None:
            manifest = Path(self.paths.model_dir) / "run_manifest.json"
            chosen = json.loads(manifest.read_text()).get("arguments", {}).get("family") if manifest.is_file() else None
            self._tokenizer = load_tokenizer(str(Path(self.paths.model_dir) / "merged_model"))
            families.bind(self._tokenizer, chosen)
        return self._tokenizer, families.family_of(self._tokenizer)

    def deploy_modelfile(self) -> str:
        from ftkit.ollama import CHECKED_VERSION, directives_for, read_modelfile

        target = self._modelfile_target()
        modelfile = Path(self.paths.gguf_dir) / "Modelfile"
        if not target.is_file():
            raise Fail(f"{modelfile}: FROM points at {target.name}, which does not exist", "run `make gguf`")
        _, family = self._family()
        written = read_modelfile(modelfile)
        if written.family != family.name:
            raise Fail(f"{modelfile}: written for family {written.family}, but the model is {family.name}",
                       "re-run `make gguf`")
        if not family.proven:
            raise Fail(f"{modelfile}: the model's chat format is outside the family registry, so no Ollama "
                       "TEMPLATE is proven to render the training text", "write and check a TEMPLATE by hand, or "
                       "use a model of a listed family", status="WARN")
        if written.template != family.ollama_template:
            raise Fail(f"{modelfile}: TEMPLATE is not the {family.name} training format's",
                       "re-run `make gguf` (do not edit the TEMPLATE)")
        missing = [s for s in family.stops if s not in written.stops]
        if missing:
            raise Fail(f"{modelfile}: stop parameters missing: {', '.join(missing)}", "re-run `make gguf`")
        parser, requires = directives_for(family, written.written_for or CHECKED_VERSION)
        if (written.parser, written.requires, written.renderer) != (parser, requires, None):
            raise Fail(f"{modelfile}: PARSER {written.parser}, REQUIRES {written.requires}, RENDERER {written.renderer}; "
                       f"the {family.name} format for Ollama {written.written_for} needs PARSER {parser}, REQUIRES "
                       f"{requires} and no RENDERER", "re-run `make gguf` (do not edit the Modelfile)")
        text = (f"{modelfile}: FROM {target.name}, TEMPLATE = {family.name} training format, {len(family.stops)} stops"
                + (f", PARSER {parser}, REQUIRES {requires}" if parser else ""))
        return text + self._quantization_cost(target)

    def deploy_parity(self) -> str:
        """Every chat path of each Modelfile renders the training prompt and llama-server answers as the HF
        model: the gguf stage's evidence, and the same checks run again now on the files on disk."""
        from ftkit import deploy_parity
        from ftkit.cli import UserError
        from ftkit.llama_server import find_binary
        from ftkit.ollama import read_modelfile

        if not self.gguf_loaded:
            raise Fail("not checked: the GGUF did not load (see the loading item)", "", status="SKIP")
        try:
            server = find_binary()
        except UserError:
            server = None  # deploy_parity.check says so
        folder = Path(self.paths.gguf_dir)
        evidence = _json(folder / deploy_parity.EVIDENCE, "run `make gguf`")
        tokenizer, _ = self._family()
        findings = []
        for name in ("Modelfile", "Modelfile.adapter"):
            if not (folder / name).is_file():
                if name == "Modelfile":
                    raise Fail(f"{folder / name} is missing", "run `make gguf`")
                continue
            recorded = evidence.get(name)
            if not recorded:
                raise Fail(f"{deploy_parity.EVIDENCE} has no check of {name}", "re-run `make gguf` (make gguf-adapter)")
            if "skipped" in recorded:
                raise Fail(f"{name}: the deployment was not checked ({recorded['skipped']})",
                           "make llama-tools, then re-run `make gguf` (make gguf-adapter)")
            answers = recorded.get("answers", {}).get("gguf")
            modelfile = read_modelfile(folder / name)
            reads = [folder, *(folder / f for f in (modelfile.source, modelfile.adapter) if f),
                     Path(self.paths.model_dir) / "merged_model", *([server] if server else [])]
            fresh = measured_once(
                "deploy-parity", reads,
                {"modelfile": name, "reference": recorded.get("reference"), "n_gpu_layers": self.n_gpu_layers},
                lambda name=name, answers=answers, recorded=recorded: deploy_parity.check(
                    folder / name, tokenizer, recorded.get("reference"), folder / answers if answers else None,
                    self.n_gpu_layers))
            summary = deploy_parity.format_summary(fresh) + (" (reused: measured earlier on these same files)"
                                                             if fresh.get("reused") else "")
            if not fresh["passed"]:
                failure = (fresh["prompts"]["failures"] or fresh.get("answers", {}).get("partings") or [{}])[0]
                raise Fail(f"{summary} (measured now); e.g. {failure}",
                           "re-run `make gguf`: the GGUF's chat template must be the pinned one, and the Modelfile "
                           "ftkit's (do not edit either)")
            if not recorded["passed"]:
                raise Fail(f"{name}: the gguf stage recorded a failed check ({deploy_parity.EVIDENCE})", "re-run `make gguf`")
            findings.append(summary)
        return "; ".join(findings) + " (measured now with llama-server and the Go harness of Ollama's path selection)"

    def _quantization_cost(self, target: Path) -> str:
        """WARN when the Modelfile's type loses more than the margins against F16 on the task's own metrics."""
        from ftkit.gguf import best_within_margin, keeps_general_ability, within_margin

        report = _json(Path(self.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
        metrics = report.get("task_metrics")
        chosen = next((q for q, info in report.get("files", {}).items() if Path(info["path"]).name == target.name), None)
        if not metrics or chosen not in metrics["types"]:
            return "; no task metrics per GGUF type (make gguf with the test split)"
        figs, f16, margins = metrics["types"][chosen], metrics["types"]["F16"], report["margins"]
        cost = (f"{chosen} vs F16 on {metrics['records']} test records: loss {figs['delta_vs_f16']['loss']:+.4f}, "
                f"ROUGE-L {figs['delta_vs_f16']['rougeL_char']:+.3f}")
        general = _json(self.paths.general, "") if self.paths.general.is_file() else None
        general_diff = (general or {}).get("differences", {}).get(f"{chosen} - F16")
        if general_diff:
            cost += f", general accuracy {100 * general_diff['difference']:+.1f} points"
        if not within_margin(figs, f16, margins) or not keeps_general_ability(chosen, general):
            best = best_within_margin(report, general)
            raise Fail(f"{cost}, beyond the margins (ROUGE-L -{margins['rougeL_char']:g}, loss "
                       f"+{100 * margins['loss']:g}%{general_margin_text(general)})", f"use {best} (the smallest type within "
                       f'them): make gguf GGUF_TYPES="{best}"' if best else "keep F16 or choose a larger type", status="WARN")
        return f"; {cost}, within the margins"

    # --- 文档记录 -----------------------------------------------------------------------------
    def docs_report(self) -> str:
        from ftkit.report import PLACEHOLDER, unfilled_sections

        report = Path(self.paths.report)
        if not report.is_file():
            raise Fail(f"{report} is missing", "run `make report`")
        text = report.read_text(encoding="utf-8")
        human, other = unfilled_sections(text)
        if other:
            raise Fail(f"{report}: {PLACEHOLDER} left in {', '.join(other)}", "run `make report` again")
        if human:
            raise Fail(f"{report}: waiting for a person in: {', '.join(human)}", f"replace {PLACEHOLDER} there by hand",
                       status="WARN")
        return f"{report}: every section filled"

    def docs_parameters(self) -> str:
        args = self._manifest().get("arguments", {})
        metrics = _json(Path(self.paths.model_dir) / "metrics.json", "run `make train`")
        keys = ("base_model", "epochs", "learning_rate", "lora_r", "lora_alpha", "batch_size", "max_length", "seed")
        missing = [k for k in keys if k not in args] + [k for k in ("final_eval_loss", "train_loss_last_window", "runtime_s")
                                                         if metrics.get(k) is None]
        if missing:
            raise Fail(f"not recorded: {', '.join(missing)}", "re-run `make train`")
        return (f"run_manifest.json: {len(args)} arguments, versions, git commit, data sha256; metrics.json: final eval "
                f"loss {metrics['final_eval_loss']:.4f}, runtime {metrics['runtime_s']:.1f} s")

    def _sha256(self, path: Path) -> str | None:
        """A file's sha256, once per file per check (a GGUF is linked from two places)."""
        cache = self.__dict__.setdefault("_digests", {})
        key = path.resolve()
        if key not in cache:
            cache[key] = sha256_file(path) if path.is_file() else None
        return cache[key]

    def docs_chain(self) -> str:
        """One run, one chain of digests: each stage recorded the digests of its inputs beside its outputs, and
        each recorded digest must be that of the file lying there now — data -> adapter -> merged model -> each
        GGUF -> Modelfile, and evaluation -> adapter. The first broken link is named, with the command that
        mends it."""
        from ftkit.artifacts import ADAPTER_REPORT, merged_digest
        from ftkit.ollama import read_modelfile
        from ftkit.train_outputs import adapter_digest

        model_dir, gguf_dir = Path(self.paths.model_dir), Path(self.paths.gguf_dir)
        links = []

        def link(name: str, evidence: str, recorded: str | None, actual: str | None, fix: str) -> None:
            if actual is None:
                raise Fail(f"broken link {name}: {evidence} names a file that is missing", fix)
            if recorded != actual:
                what = f"records {recorded[:12]}…" if recorded else "records no digest"
                raise Fail(f"broken link {name}: {evidence} {what}, the file there now is {actual[:12]}… (made from "
                           "something other than what lies beside it)", fix)
            links.append(name)

        manifest = self._manifest()
        for split in ("train", "validation"):
            path = self.paths.split(split)
            link(f"{path.name} -> lora_adapter", "run_manifest.json",
                 manifest.get("data", {}).get(split, {}).get("sha256"), self._sha256(path),
                 "run `make train` (the data changed after training), then `make all`")
        adapter = adapter_digest(model_dir / "lora_adapter")
        link("lora_adapter", "run_manifest.json", manifest.get("adapter"), adapter, "re-run `make train`")
        evaluated = self._summary().get("models", {}).get("adapter_sha256")
        link("lora_adapter -> evaluation", self.paths.summary.name, evaluated, adapter,
             "run `make eval` (the adapter changed after the evaluation)")
        merge = _json(model_dir / "merge_report.json", "run `make merge`")
        link("lora_adapter -> merged_model", "merge_report.json", merge.get("adapter_sha256"), adapter,
             "run `make merge`, then `make gguf` (the adapter changed after the merge)")
        quant = _json(gguf_dir / "quant_report.json", "run `make gguf`")
        link("merged_model -> GGUF", "quant_report.json", quant.get("merged_sha256"), merged_digest(model_dir / "merged_model"),
             "run `make gguf` (the merged model changed after the export)")
        for info in quant.get("files", {}).values():
            path = gguf_dir / Path(info["path"]).name
            link(path.name, "quant_report.json", info.get("sha256"), self._sha256(path),
                 "run `make gguf` (do not replace a GGUF by hand)")
        for name in ("Modelfile", "Modelfile.adapter"):
            if not (gguf_dir / name).is_file():
                continue
            written = read_modelfile(gguf_dir / name)
            for source in filter(None, (written.source, written.adapter)):
                file = Path(source).name
                link(f"{file} -> {name}", name, written.digests.get(file), self._sha256(gguf_dir / file),
                     f"run `make gguf{'-adapter' if name.endswith('adapter') else ''}` (the Modelfile was written for "
                     "another file)")
            if name == "Modelfile.adapter":
                export = _json(gguf_dir / ADAPTER_REPORT, "run `make gguf-adapter`")
                link("lora_adapter -> Modelfile.adapter", ADAPTER_REPORT,
                     export.get("adapter_sha256"), adapter, "run `make gguf-adapter` (the adapter changed after its export)")
        return f"{len(links)} links hold: " + ", ".join(links)

    def docs_log(self) -> str:
        log = self._log()
        steps = [e["step"] for e in log if "loss" in e]
        metrics = _json(Path(self.paths.model_dir) / "metrics.json", "run `make train`")
        if not steps or steps[-1] != metrics.get("optimizer_steps"):
            raise Fail(f"train_log.jsonl ends at step {steps[-1] if steps else None}, metrics.json says "
                       f"{metrics.get('optimizer_steps')} steps", "re-run `make train`")
        events = list((Path(self.paths.model_dir) / "checkpoints").glob("runs/*/events.out.tfevents.*"))
        return (f"train_log.jsonl: {len(steps)} logged steps up to {steps[-1]}; "
                f"{len(events)} TensorBoard event file(s); loss_curve.png "
                f"{'present' if (Path(self.paths.model_dir) / 'loss_curve.png').is_file() else 'missing'}")


ITEMS: list[tuple[str, str, str, str]] = [
    ("data", "min_records", "准备了至少100条高质量的训练数据", "data_min_records"),
    ("data", "well_formed", "数据格式正确（instruction/input/output）", "data_well_formed"),
    ("data", "splits", "数据已划分为训练/验证/测试集", "data_splits"),
    ("train", "config", "训练配置合理（epochs, learning_rate等）", "train_config"),
    ("train", "loss_fell", "训练loss正常下降", "train_loss_fell"),
    ("train", "val_loss_fell", "验证loss正常下降", "train_val_loss_fell"),
    ("train", "adapter", "模型已保存到指定目录", "train_adapter"),
    ("eval", "test_split", "在测试集上进行了评估", "eval_test_split"),
    ("eval", "metrics", "记录了评估指标（loss, 回答质量等）", "eval_metrics"),
    ("eval", "human", "进行了人工评估和对比", "eval_human"),
    ("eval", "forgetting", "通用能力没有因微调明显下降（单项选择题，微调前后对比）", "eval_forgetting"),
    ("deploy", "loads", "模型可以正常加载", "deploy_loads"),
    ("deploy", "speed", "推理速度满足要求", "deploy_speed"),
    ("deploy", "quality", "已回答质量有明显提升（如有数据支持）", "deploy_quality"),
    ("deploy", "modelfile", "Modelfile 模板与训练格式一致", "deploy_modelfile"),
    ("deploy", "parity", "Ollama 与 llama-server 的每条对话路径都得到训练时的提示与回答", "deploy_parity"),
    ("docs", "report", "填写了训练报告（training_report.md）", "docs_report"),
    ("docs", "parameters", "记录了关键参数和结果", "docs_parameters"),
    ("docs", "log", "保存了训练日志", "docs_log"),
    ("docs", "chain", "每个产物都出自同一次运行（数据→适配器→合并模型→GGUF→Modelfile，评估→适配器）", "docs_chain"),
]


def general_margin_text(general: dict | None) -> str:
    if not general:
        return ""
    return f", general accuracy -{100 * general.get('margins', {}).get('warn', 0.02):g} points"


def run_checks(paths: Paths, thresholds: Thresholds, progress: Callable[[Item], None] | None = None,
               n_gpu_layers: int = 0, only: Collection[str] | None = None) -> list[Item]:
    """Every item in checklist order; `only` (item keys) checks those alone — an item that builds on another
    (deploy.speed and deploy.parity on deploy.loads) needs that one named too."""
    checker = Checker(paths, thresholds, n_gpu_layers)
    items = []
    for section, key, title, method in ITEMS:
        if only is not None and f"{section}.{key}" not in only:
            continue
        item = Item(section, f"{section}.{key}", title)
        try:
            item.evidence = getattr(checker, method)()
        except Fail as err:
            item.status, item.evidence, item.fix = err.status, err.evidence, err.fix
        except Exception as err:  # noqa: BLE001 - a check that crashes on broken evidence is a failure, not a traceback
            item.status, item.evidence, item.fix = "FAIL", f"could not check: {type(err).__name__}: {err}", "see the evidence"
        items.append(item)
        if progress:
            progress(item)
    return items


def to_json(items: list[Item], thresholds: Thresholds) -> dict:
    counts = {s: sum(i.status == s for i in items) for s in ("PASS", "WARN", "FAIL", "SKIP")}
    return {"passed": counts["FAIL"] == 0, "counts": counts, "overridden_thresholds": thresholds.overridden,
            "items": [asdict(i) for i in items]}


def verdict(result: dict) -> str:
    """The closing line: PASSED only when nothing waits; WARN items are named as waiting for a person."""
    counts = result["counts"]
    if not result["passed"]:
        head = "FAILED"
    elif counts["WARN"]:
        head = f"PASSED — {counts['WARN']} item(s) wait for a person"
    else:
        head = "PASSED"
    return f"{head}: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def format_line(item: Item) -> str:
    line = f"{item.status:<5} {item.key:<20} {item.title}\n      {item.evidence}"
    return line + (f"\n      -> {item.fix}" if item.fix and item.status != "PASS" else "")


def to_markdown(items: list[Item], thresholds: Thresholds) -> str:
    result = to_json(items, thresholds)
    lines = ["# 验收检查 Acceptance check", "",
             f"Result: **{verdict(result)}**", ""]
    if thresholds.overridden:
        lines += ["Thresholds overridden: " + "; ".join(thresholds.overridden), ""]
    for section, name in SECTIONS.items():
        lines += [f"## {name}", "", "| | item | evidence | to do |", "|---|---|---|---|"]
        for i in (i for i in items if i.section == section):
            cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
            lines.append(f"| {i.status} | {i.title} | {cell(i.evidence)} | {cell(i.fix) if i.status != 'PASS' else ''} |")
        lines.append("")
    return "\n".join(lines)
