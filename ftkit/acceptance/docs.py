"""The documentation items: the report, the recorded parameters, the log, one chain of digests.

Each check is a function of the run's evidence: it returns the evidence of a PASS, or raises Fail (FAIL,
WARN or SKIP) with the evidence and what to do.
"""
from __future__ import annotations

from pathlib import Path

from ftkit.acceptance.evidence import Fail, Run, read_json


def report(run: Run) -> str:
    from ftkit.report import PLACEHOLDER, unfilled_sections

    report = Path(run.paths.report)
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


def parameters(run: Run) -> str:
    args = run.manifest().get("arguments", {})
    metrics = read_json(Path(run.paths.model_dir) / "metrics.json", "run `make train`")
    keys = ("base_model", "epochs", "learning_rate", "lora_r", "lora_alpha", "batch_size", "max_length", "seed")
    missing = [k for k in keys if k not in args] + [k for k in ("final_eval_loss", "train_loss_last_window", "runtime_s")
                                                     if metrics.get(k) is None]
    if missing:
        raise Fail(f"not recorded: {', '.join(missing)}", "re-run `make train`")
    return (f"run_manifest.json: {len(args)} arguments, versions, git commit, data sha256; metrics.json: final eval "
            f"loss {metrics['final_eval_loss']:.4f}, runtime {metrics['runtime_s']:.1f} s")


def log(run: Run) -> str:
    log = run.log()
    steps = [e["step"] for e in log if "loss" in e]
    metrics = read_json(Path(run.paths.model_dir) / "metrics.json", "run `make train`")
    if not steps or steps[-1] != metrics.get("optimizer_steps"):
        raise Fail(f"train_log.jsonl ends at step {steps[-1] if steps else None}, metrics.json says "
                   f"{metrics.get('optimizer_steps')} steps", "re-run `make train`")
    events = list((Path(run.paths.model_dir) / "checkpoints").glob("runs/*/events.out.tfevents.*"))
    return (f"train_log.jsonl: {len(steps)} logged steps up to {steps[-1]}; "
            f"{len(events)} TensorBoard event file(s); loss_curve.png "
            f"{'present' if (Path(run.paths.model_dir) / 'loss_curve.png').is_file() else 'missing'}")


def chain(run: Run) -> str:
    """One run, one chain of digests: each stage recorded the digests of its inputs beside its outputs, and
    each recorded digest must be that of the file lying there now — data -> adapter -> merged model -> each
    GGUF -> Modelfile, and evaluation -> adapter. The first broken link is named, with the command that
    mends it."""
    from ftkit.core.artifacts import ADAPTER_REPORT, adapter_digest, merged_digest
    from ftkit.core.ollama import read_modelfile

    model_dir, gguf_dir = Path(run.paths.model_dir), Path(run.paths.gguf_dir)
    links = []

    def link(name: str, evidence: str, recorded: str | None, actual: str | None, fix: str) -> None:
        if actual is None:
            raise Fail(f"broken link {name}: {evidence} names a file that is missing", fix)
        if recorded != actual:
            what = f"records {recorded[:12]}…" if recorded else "records no digest"
            raise Fail(f"broken link {name}: {evidence} {what}, the file there now is {actual[:12]}… (made from "
                       "something other than what lies beside it)", fix)
        links.append(name)

    manifest = run.manifest()
    for split in ("train", "validation"):
        path = run.paths.split(split)
        link(f"{path.name} -> lora_adapter", "run_manifest.json",
             manifest.get("data", {}).get(split, {}).get("sha256"), run.sha256(path),
             "run `make train` (the data changed after training), then `make all`")
    adapter = adapter_digest(model_dir / "lora_adapter")
    link("lora_adapter", "run_manifest.json", manifest.get("adapter"), adapter, "re-run `make train`")
    evaluated = run.summary().get("models", {}).get("adapter_sha256")
    link("lora_adapter -> evaluation", run.paths.summary.name, evaluated, adapter,
         "run `make eval` (the adapter changed after the evaluation)")
    merge = read_json(model_dir / "merge_report.json", "run `make merge`")
    link("lora_adapter -> merged_model", "merge_report.json", merge.get("adapter_sha256"), adapter,
         "run `make merge`, then `make gguf` (the adapter changed after the merge)")
    quant = read_json(gguf_dir / "quant_report.json", "run `make gguf`")
    link("merged_model -> GGUF", "quant_report.json", quant.get("merged_sha256"), merged_digest(model_dir / "merged_model"),
         "run `make gguf` (the merged model changed after the export)")
    for info in quant.get("files", {}).values():
        path = gguf_dir / Path(info["path"]).name
        link(path.name, "quant_report.json", info.get("sha256"), run.sha256(path),
             "run `make gguf` (do not replace a GGUF by hand)")
    for name in ("Modelfile", "Modelfile.adapter"):
        if not (gguf_dir / name).is_file():
            continue
        written = read_modelfile(gguf_dir / name)
        for source in filter(None, (written.source, written.adapter)):
            file = Path(source).name
            link(f"{file} -> {name}", name, written.digests.get(file), run.sha256(gguf_dir / file),
                 f"run `make gguf{'-adapter' if name.endswith('adapter') else ''}` (the Modelfile was written for "
                 "another file)")
        if name == "Modelfile.adapter":
            export = read_json(gguf_dir / ADAPTER_REPORT, "run `make gguf-adapter`")
            link("lora_adapter -> Modelfile.adapter", ADAPTER_REPORT,
                 export.get("adapter_sha256"), adapter, "run `make gguf-adapter` (the adapter changed after its export)")
    return f"{len(links)} links hold: " + ", ".join(links)
