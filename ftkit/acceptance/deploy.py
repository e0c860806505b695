"""The deployment items: the files load, fast enough, better answers, the Modelfile and every chat path.

Each check is a function of the run's evidence: it returns the evidence of a PASS, or raises Fail (FAIL,
WARN or SKIP) with the evidence and what to do.
"""
from __future__ import annotations

import time
from pathlib import Path

from ftkit.acceptance.evidence import DEFAULT_MIN_TOKENS_PER_SECOND, Fail, Run, measured_once, read_json
from ftkit.core import prompts


def loads(run: Run) -> str:
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    from ftkit.core.threads import llama_thread_args

    run.gguf_loaded = False
    merged = Path(run.paths.model_dir) / "merged_model"
    report = read_json(Path(run.paths.model_dir) / "merge_report.json", "run `make merge`")
    if not report.get("verification", {}).get("passed"):
        raise Fail("merge_report.json: the merged model did not match base + adapter", "re-run `make merge`")
    try:
        AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)
    except Exception as err:  # noqa: BLE001 - any failure to load is the finding
        raise Fail(f"{merged} does not load ({str(err).splitlines()[0]})", "re-run `make merge`") from None
    target = run.modelfile_target()
    try:
        Llama(model_path=str(target), n_ctx=256, n_gpu_layers=run.n_gpu_layers, verbose=False, **llama_thread_args())
    except Exception as err:  # noqa: BLE001
        raise Fail(f"{target.name} does not load in llama.cpp ({str(err).splitlines()[0]})", "re-run `make gguf`") from None
    quant = read_json(Path(run.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
    if not quant.get("verification", {}).get("passed"):
        raise Fail("quant_report.json: the GGUF does not reproduce the merged model", "re-run `make gguf`")
    run.gguf_loaded = True
    return f"{merged.name} (HF) and {target.name} (llama.cpp) load; merge and GGUF verifications passed"


def speed(run: Run) -> str:
    from llama_cpp import Llama

    from ftkit.core.threads import llama_thread_args

    if not run.gguf_loaded:
        raise Fail("not measured: the GGUF did not load (see the loading item)", "", status="SKIP")
    target = run.modelfile_target()
    llm = Llama(model_path=str(target), n_ctx=512, n_gpu_layers=run.n_gpu_layers, verbose=False, seed=0,
                **llama_thread_args())
    tokenizer, _ = run.family()
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "中国的首都是哪里？"}), tokenizer).prompt_ids
    tokens, started = 0, time.perf_counter()
    for _ in llm.generate(ids, temp=0.0, top_k=1):
        tokens += 1  # decode speed: EOS is not a reason to stop measuring
        if tokens == 64:
            break
    rate = tokens / (time.perf_counter() - started)
    note = " [threshold overridden]" if run.thresholds.min_tokens_per_second != DEFAULT_MIN_TOKENS_PER_SECOND else ""
    if rate < run.thresholds.min_tokens_per_second:
        raise Fail(f"{rate:.1f} tokens/s < {run.thresholds.min_tokens_per_second:g}{note} ({target.name}, measured now)",
                   "use a smaller quantization (GGUF_TYPES=Q4_K_M) or a GPU (n_gpu_layers)")
    where = f"{run.n_gpu_layers if run.n_gpu_layers >= 0 else 'all'} layer(s) offloaded" if run.n_gpu_layers else "CPU"
    return f"{rate:.1f} tokens/s >= {run.thresholds.min_tokens_per_second:g}{note} ({target.name}, measured now, {where})"


def quality(run: Run) -> str:
    summary = run.summary()
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


def modelfile(run: Run) -> str:
    from ftkit.core.ollama import CHECKED_VERSION, directives_for, read_modelfile

    target = run.modelfile_target()
    modelfile = Path(run.paths.gguf_dir) / "Modelfile"
    if not target.is_file():
        raise Fail(f"{modelfile}: FROM points at {target.name}, which does not exist", "run `make gguf`")
    _, family = run.family()
    written = read_modelfile(modelfile)
    if written.family != family.name:
        raise Fail(f"{modelfile}: written for family {written.family}, but the model is {family.name}",
                   "re-run `make gguf`")
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
    return text + _quantization_cost(run, target)


def parity(run: Run) -> str:
    """Every chat path of each Modelfile renders the training prompt and llama-server answers as the HF
    model: the gguf stage's evidence, and the same checks run again now on the files on disk."""
    from ftkit.core.cli import UserError
    from ftkit.core.ollama import read_modelfile
    from ftkit.verify import deploy_parity
    from ftkit.verify.llama_server import find_binary

    if not run.gguf_loaded:
        raise Fail("not checked: the GGUF did not load (see the loading item)", "", status="SKIP")
    try:
        server = find_binary()
    except UserError:
        server = None  # deploy_parity.check says so
    folder = Path(run.paths.gguf_dir)
    evidence = read_json(folder / deploy_parity.EVIDENCE, "run `make gguf`")
    tokenizer, _ = run.family()
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
                 Path(run.paths.model_dir) / "merged_model", *([server] if server else [])]
        fresh = measured_once(
            "deploy-parity", reads,
            {"modelfile": name, "reference": recorded.get("reference"), "n_gpu_layers": run.n_gpu_layers},
            lambda name=name, answers=answers, recorded=recorded: deploy_parity.check(
                folder / name, tokenizer, recorded.get("reference"), folder / answers if answers else None,
                run.n_gpu_layers))
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


def _quantization_cost(run: Run, target: Path) -> str:
    """WARN when the Modelfile's type loses more than the margins against F16 on the task's own metrics."""
    from ftkit.verify.gguf_checks import best_within_margin, keeps_general_ability, within_margin

    report = read_json(Path(run.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
    metrics = report.get("task_metrics")
    chosen = next((q for q, info in report.get("files", {}).items() if Path(info["path"]).name == target.name), None)
    if not metrics or chosen not in metrics["types"]:
        return "; no task metrics per GGUF type (make gguf with the test split)"
    figs, f16, margins = metrics["types"][chosen], metrics["types"]["F16"], report["margins"]
    cost = (f"{chosen} vs F16 on {metrics['records']} test records: loss {figs['delta_vs_f16']['loss']:+.4f}, "
            f"ROUGE-L {figs['delta_vs_f16']['rougeL_char']:+.3f}")
    general = read_json(run.paths.general, "") if run.paths.general.is_file() else None
    general_diff = (general or {}).get("differences", {}).get(f"{chosen} - F16")
    if general_diff:
        cost += f", general accuracy {100 * general_diff['difference']:+.1f} points"
    if not within_margin(figs, f16, margins) or not keeps_general_ability(chosen, general):
        best = best_within_margin(report, general)
        raise Fail(f"{cost}, beyond the margins (ROUGE-L -{margins['rougeL_char']:g}, loss "
                   f"+{100 * margins['loss']:g}%{general_margin_text(general)})", f"use {best} (the smallest type within "
                   f'them): make gguf GGUF_TYPES="{best}"' if best else "keep F16 or choose a larger type", status="WARN")
    return f"; {cost}, within the margins"


def general_margin_text(general: dict | None) -> str:
    if not general:
        return ""
    return f", general accuracy -{100 * general.get('margins', {}).get('warn', 0.02):g} points"
