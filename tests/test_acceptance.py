"""make acceptance on a finished run, then tampered with one item at a time: exactly that item fails."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_script

from ftkit.acceptance import Thresholds, run_checks
from ftkit.core.artifacts import Paths
from ftkit.report import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def script(name, *args):
    result = run_script(name, *args)
    assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def finished_run(run_folder, demo_run) -> Path:
    """`make demo`'s run (tests/conftest.py), its human sheet rated and imported and the report's human parts
    written: every item of the checklist can pass."""
    from conftest import built_once

    def build(run: Path) -> None:
        # make's stamps name the demo's folders: a run that lies elsewhere starts without them, as one made by the
        # scripts themselves (the make tests below stamp it on their first make)
        shutil.copytree(demo_run, run, ignore=shutil.ignore_patterns(".command-output.json", ".settings-*"))
        reports = run / "reports"
        output = reports / "evaluation_results.csv"
        key = json.loads(Path(f"{output}.human_key.json").read_text())["rows"]
        with open(reports / "sheet.csv", encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            tuned = "A" if key[row["row"]]["A"] == "finetuned" else "B"
            row.update(score_A="3", score_B="3", preference=tuned)
        with open(reports / "sheet.csv", "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        script("evaluate_model.py", "--output", str(output), "--import-ratings", str(reports / "sheet.csv"))
        flags = ["--data-dir", str(run / "data"), "--model-dir", str(run / "model"), "--eval-output", str(output),
                 "--gguf-dir", str(run / "gguf")]
        script("make_report.py", *flags, "--output", str(reports / "training_report.md"))
        report = reports / "training_report.md"
        report.write_text(report.read_text(encoding="utf-8").replace(PLACEHOLDER, "(written by a person)"),
                          encoding="utf-8")
    return built_once(run_folder, "acceptance-run", build)


def test_make_demo_runs_the_whole_pipeline_and_passes_acceptance(demo_run):
    """The newcomer's first command, as README gives it (the folders moved into the test's run folder)."""
    from conftest import kept_output

    result = kept_output(demo_run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("PASSED") and " 0 FAIL" in verdict, verdict
    for made in ("data/train_train.jsonl", "model/lora_adapter/adapter_model.safetensors", "gguf/tiny-ft-Q4_K_M.gguf",
                 "gguf/Modelfile", "reports/training_report.md", "reports/acceptance.json"):
        assert (demo_run / made).is_file(), made


def copy_of(finished_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def paths_of(run: Path) -> Paths:
    return Paths(str(run / "data"), "train", str(run / "model"), str(run / "reports" / "evaluation_results.csv"),
                 str(run / "gguf"), str(run / "reports" / "training_report.md"))


def drop_the_ratings(run: Path) -> None:
    summary_path = run / "reports" / "evaluation_results.csv.summary.json"
    summary = json.loads(summary_path.read_text())
    del summary["human_evaluation"]
    summary_path.write_text(json.dumps(summary))


def statuses(run: Path, **thresholds) -> dict[str, str]:
    return {item.key: item.status for item in run_checks(paths_of(run), Thresholds(**thresholds))}


def not_passing(run: Path, **thresholds) -> dict[str, str]:
    return {k: v for k, v in statuses(run, **thresholds).items() if v != "PASS"}


def test_the_finished_run_passes_every_item(finished_run):
    result = statuses(finished_run)
    assert len(result) == 20 and set(result.values()) == {"PASS"}, result


def test_the_cli_prints_a_line_per_item_and_writes_json_and_markdown(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "acceptance_check.py"), "--data-dir", str(run / "data"),
                             "--model-dir", str(run / "model"), "--eval-output", str(run / "reports" / "evaluation_results.csv"),
                             "--gguf-dir", str(run / "gguf"), "--report", str(run / "reports" / "training_report.md"),
                             "--output-dir", str(run / "reports"), "--min-records", "10"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(line.startswith("PASS ") for line in result.stdout.splitlines()) == 20
    assert "thresholds overridden: MIN_RECORDS=10" in result.stdout and "[threshold overridden]" in result.stdout
    data = json.loads((run / "reports" / "acceptance.json").read_text())
    assert data["passed"] and data["counts"]["PASS"] == 20 and data["overridden_thresholds"]
    assert "## 数据准备 Data" in (run / "reports" / "acceptance.md").read_text()
    assert result.stdout.strip().splitlines()[-1].startswith("PASSED: 20 PASS")  # nothing waits for a person


def test_passed_says_how_many_items_wait_for_a_person(finished_run, tmp_path):
    from ftkit.acceptance import run_checks, to_json, verdict

    run = copy_of(finished_run, tmp_path)
    drop_the_ratings(run)
    paths = paths_of(run)
    line = verdict(to_json(run_checks(paths, Thresholds(min_records=10)), Thresholds(min_records=10)))
    assert line.startswith("PASSED — 1 item(s) wait for a person: 19 PASS, 1 WARN, 0 FAIL")


def test_the_report_describes_the_machine_that_trained_and_the_decoding_used(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    manifest_path = run / "model" / "run_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["hardware"].update(cpu="TrainingBox-9000", cpu_count=96, gpus=["NVIDIA H200"])
    manifest_path.write_text(json.dumps(manifest))
    summary_path = run / "reports" / "evaluation_results.csv.summary.json"
    summary = json.loads(summary_path.read_text())
    summary["decoding"].update(temperature=0.7, top_p=0.9)
    summary_path.write_text(json.dumps(summary))
    report = run / "reports" / "r.md"
    script("make_report.py", "--data-dir", str(run / "data"), "--model-dir", str(run / "model"), "--eval-output",
           str(run / "reports" / "evaluation_results.csv"), "--gguf-dir", str(run / "gguf"), "--output", str(report))
    text = report.read_text(encoding="utf-8")
    assert "TrainingBox-9000, 96 CPUs, GPU NVIDIA H200" in text  # not this machine
    assert "sampling at temperature 0.7, top-p 0.9" in text and "greedy decoding" not in text


def test_delete_the_test_split(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    (run / "data" / "train_test.jsonl").unlink()
    assert not_passing(run) == {"data.splits": "FAIL"}


def set_eval_losses(run: Path, values: list[float]) -> None:
    """A consistent fake: the raw log and metrics.json agree on the new validation losses."""
    log = [json.loads(x) for x in (run / "model" / "train_log.jsonl").read_text().splitlines()]
    it = iter(values)
    for entry in log:
        if "eval_loss" in entry:
            entry["eval_loss"] = next(it)
    (run / "model" / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    for entry, value in zip(metrics["eval_loss_per_epoch"], values, strict=True):
        entry["eval_loss"] = value
    (run / "model" / "metrics.json").write_text(json.dumps(metrics))


def test_validation_loss_that_rises(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    set_eval_losses(run, [5.0, 5.5, 6.0, 6.5, 7.0])
    assert not_passing(run) == {"train.val_loss_fell": "FAIL"}


def test_validation_loss_rising_only_at_the_end_is_a_warning(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    set_eval_losses(run, [6.0, 5.0, 4.5, 4.8, 5.1])
    assert not_passing(run) == {"train.val_loss_fell": "WARN"}


def test_a_consistent_set_of_edited_logs_is_caught_by_measuring_again(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    better = [round(e["eval_loss"] * 0.7, 4) for e in metrics["eval_loss_per_epoch"]]  # a nicer-looking run
    set_eval_losses(run, better)
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    metrics["final_eval_loss"] = better[-1]
    (run / "model" / "metrics.json").write_text(json.dumps(metrics))
    paths = paths_of(run)
    items = {i.key: i for i in run_checks(paths, Thresholds())}
    assert items["train.val_loss_fell"].status == "FAIL"
    assert "does not reproduce its logged validation loss" in items["train.val_loss_fell"].evidence
    assert {k for k, i in items.items() if i.status != "PASS"} == {"train.val_loss_fell"}


def test_the_untouched_run_reproduces_its_validation_loss(finished_run, monkeypatch):
    from ftkit.acceptance import REUSE_ENV

    monkeypatch.delenv(REUSE_ENV)  # measured here, not reused from another test's check of the same files
    [item] = run_checks(paths_of(finished_run), Thresholds(), only={"train.val_loss_fell"})
    assert item.status == "PASS" and "re-measured now on 24 validation records" in item.evidence


def test_a_quantization_that_costs_too_much_on_the_task_warns_and_names_a_better_type(finished_run, tiny_model_dir,
                                                                                       tmp_path):
    run = copy_of(finished_run, tmp_path)
    # Q2_K of the tiny model loses about 0.7% answer loss against F16, Q4_K_M about 0.1%: a 0.5% margin
    script("convert_to_gguf.py", "--model-path", str(run / "model" / "merged_model"), "--quantization", "Q2_K",
           "Q4_K_M", "Q8_0", "--output-dir", str(run / "gguf"), "--model-name", "tiny-ft", "--create-modelfile",
           "--test-data", str(run / "data" / "train_test.jsonl"), "--max-loss-rise", "0.005")
    script("eval_general.py", "--base-model", str(tiny_model_dir), "--lora-model", str(run / "model" / "lora_adapter"),
           "--quant-report", str(run / "gguf" / "quant_report.json"), "--per-subject", "6", "--output",
           str(run / "reports" / "eval_general.json"))  # every type the export made is checked again
    paths = paths_of(run)
    items = {i.key: i for i in run_checks(paths, Thresholds())}
    assert {k for k, i in items.items() if i.status != "PASS"} == {"deploy.modelfile"}
    item = items["deploy.modelfile"]
    assert item.status == "WARN" and "Q2_K vs F16" in item.evidence and "beyond the margins" in item.evidence
    assert 'GGUF_TYPES="Q4_K_M"' in item.fix


def test_faked_metrics_disagreeing_with_the_log(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    metrics["train_loss_last_window"] = 0.01
    (run / "model" / "metrics.json").write_text(json.dumps(metrics))
    assert not_passing(run) == {"train.loss_fell": "FAIL"}


def test_remove_the_report(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    (run / "reports" / "training_report.md").unlink()
    assert not_passing(run) == {"docs.report": "FAIL"}


def test_put_a_train_record_into_test(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    leaked = (run / "data" / "train_train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    with open(run / "data" / "train_test.jsonl", "a", encoding="utf-8") as f:
        f.write(leaked + "\n")
    assert not_passing(run) == {"data.splits": "FAIL"}


def test_corrupt_the_gguf(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    gguf = run / "gguf" / "tiny-ft-Q4_K_M.gguf"
    data = bytearray(gguf.read_bytes())
    data[:64] = b"\0" * 64  # the header is gone
    gguf.write_bytes(bytes(data))
    assert not_passing(run) == {"deploy.loads": "FAIL", "deploy.speed": "SKIP", "deploy.parity": "SKIP",
                                "docs.chain": "FAIL", "eval.forgetting": "FAIL"}  # not the file exported, nor checked


def test_swap_the_modelfile_template(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    modelfile = run / "gguf" / "Modelfile"
    text = modelfile.read_text()
    modelfile.write_text(text.replace(" [/INST]", "[/INST]", 1))  # one space: a different prompt than trained on
    # the Modelfile is not ftkit's, and Ollama's TEMPLATE path renders another prompt than the training one
    assert not_passing(run) == {"deploy.modelfile": "FAIL", "deploy.parity": "FAIL"}


def test_drop_the_ratings(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    drop_the_ratings(run)
    assert not_passing(run) == {"eval.human": "WARN"}


def test_swap_the_adapter_for_another(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    weights = run / "model" / "lora_adapter" / "adapter_model.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    save_file({k: v * 1.01 for k, v in tensors.items()}, weights)
    # nor the adapter whose general ability was checked
    assert not_passing(run) == {"train.adapter": "FAIL", "docs.chain": "FAIL", "eval.forgetting": "FAIL"}


def edit_general(run: Path, change) -> None:
    path = run / "reports" / "eval_general.json"
    result = json.loads(path.read_text())
    change(result)
    path.write_text(json.dumps(result))


def test_an_edited_general_accuracy_is_caught(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    edit_general(run, lambda r: r["models"]["fine-tuned"].update(accuracy=r["models"]["base"]["accuracy"] + 0.1))
    assert not_passing(run) == {"eval.forgetting": "FAIL"}
    [item] = run_checks(paths_of(run), Thresholds(), only={"eval.forgetting"})
    assert "fine-tuned's accuracy" in item.evidence and "not what its recorded answers give" in item.evidence


def test_a_general_check_of_another_gguf_is_caught(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    edit_general(run, lambda r: r["models"]["Q4_K_M"].update(sha256="0" * 64))  # checked some other Q4_K_M file
    [item] = run_checks(paths_of(run), Thresholds(), only={"eval.forgetting"})
    assert item.status == "FAIL" and "the Q4_K_M checked is not the file tiny-ft-Q4_K_M.gguf" in item.evidence
    assert "make eval-general" in item.fix


def test_a_fine_tuned_model_that_forgot_fails_and_one_that_lost_a_little_warns(finished_run, tmp_path):
    """The verdict, from recorded answers consistent with their accuracy (on the whole shipped set, so that a
    loss of a few points can be told from noise): every answer wrong is a loss far beyond 5 points; 10 of 254
    answers lost, beyond 2 points with an interval below 0; 3 lost, within noise."""
    from ftkit.stages.evaluate.general_eval import LETTERS, accuracy_figures, read_benchmark

    run = copy_of(finished_run, tmp_path)
    benchmark = read_benchmark(json.loads((run / "reports" / "eval_general.json").read_text())["benchmark"]["path"])
    right = benchmark.answers
    wrong = "".join(LETTERS[(LETTERS.index(a) + 1) % 4] for a in right)

    def answered(tuned: str):
        def change(r):
            r["benchmark"].update(per_subject=0, digest=benchmark.digest(r["benchmark"]["shots"]))
            for name, entry in r["models"].items():
                choices = tuned if name == "fine-tuned" else right
                entry.update(choices=choices, **accuracy_figures(benchmark, choices))
        edit_general(run, change)
        [item] = run_checks(paths_of(run), Thresholds(), only={"eval.forgetting"})
        return item

    item = answered(wrong)
    assert item.status == "FAIL" and "-100.0 points" in item.evidence and "lost more than 5 points" in item.evidence
    item = answered(wrong[:10] + right[10:])
    assert item.status == "WARN" and "-3.9 points" in item.evidence and "lost more than 2 points" in item.evidence
    assert answered(wrong[:3] + right[3:]).status == "PASS"


def test_too_few_records_unless_the_threshold_is_lowered(finished_run):
    assert not_passing(finished_run, min_records=1000) == {"data.min_records": "FAIL"}
    assert not_passing(finished_run, min_records=10) == {}


def demo_settings(run: Path, tiny_model_dir: Path) -> list[str]:
    """The make variables that point make at a copy of the demo's run (its own settings)."""
    return [f"RAW_DATA={run / 'data' / 'sample_data.json'}", f"BASE_MODEL={tiny_model_dir}",
            f"TINY_MODEL={tiny_model_dir}", f"DATA_DIR={run / 'data'}", f"MODEL_DIR={run / 'model'}",
            f"REPORT_DIR={run / 'reports'}", f"GGUF_DIR={run / 'gguf'}", "MODEL_NAME=tiny-ft",
            f"HUMAN_SHEET={run / 'reports' / 'sheet.csv'}", "RUN=local"]


def test_make_all_skips_finished_stages_and_reruns_what_a_changed_input_affects(finished_run, tiny_model_dir, tmp_path):
    import os

    from conftest import run_make

    run = copy_of(finished_run, tmp_path)
    raw = run / "data" / "sample_data.json"
    variables = demo_settings(run, tiny_model_dir)
    stages = ("prepare_data.py", "train_lora.py", "evaluate_model.py", "merge_lora.py", "convert_to_gguf.py")
    planned = run_make("-n", "all", *variables).stdout
    assert not [s for s in stages if s in planned], planned  # everything is up to date
    assert "acceptance_check.py" in planned  # the check itself always runs
    later = max(p.stat().st_mtime for p in run.rglob("*") if p.is_file()) + 10
    os.utime(raw, (later, later))  # new raw data
    assert "prepare_data.py" in run_make("-n", "all", *variables).stdout
    run_make("data", *variables)  # really redo the data stage (make -n cannot show what follows from it)
    planned = run_make("-n", "all", *variables).stdout
    assert all(s in planned for s in stages[1:]), planned  # everything downstream of the data is redone


def chain(run: Path):
    [item] = run_checks(paths_of(run), Thresholds(), only={"docs.chain"})
    return item


def test_make_remembers_the_epochs_retrains_once_and_acceptance_walks_the_chain_of_one_run(finished_run, tiny_model_dir,
                                                                                         tmp_path):
    """The guide's sequence: `make train EPOCHS=1`, then the later stages without EPOCHS: one training, never
    another. Retraining without re-exporting, and a GGUF made from another adapter, break the chain at the
    link acceptance names."""
    from conftest import run_make, scratch_project

    run = copy_of(finished_run, tmp_path)
    project = scratch_project(tmp_path / "project")
    variables = demo_settings(run, tiny_model_dir)
    stages = ("prepare_data.py", "train_lora.py", "evaluate_model.py", "merge_lora.py", "convert_to_gguf.py")

    def make(*args):
        return run_make(*args, project=project).stdout

    def planned(*extra):
        out = make("-n", "all", *variables, *extra)
        return [s for s in stages if s in out]

    assert not [s for s in stages if s in make("gguf", *variables)]  # up to date; its settings are stamped now
    assert planned() == [] and chain(run).status == "PASS"
    other_adapters_gguf = (run / "gguf" / "tiny-ft-Q4_K_M.gguf").read_bytes()
    assert planned("EPOCHS=1") == list(stages[1:])  # the data do not depend on the epochs; all after it does
    assert "train_lora.py" in make("train", *variables, "EPOCHS=1")  # really retrain (seconds on the tiny model)
    item = chain(run)  # retrained, not re-exported
    assert item.status == "FAIL" and "broken link lora_adapter -> evaluation" in item.evidence
    assert "make eval" in item.fix
    assert planned() == list(stages[2:])  # EPOCHS=1 is remembered: what follows the new adapter is still to redo
    assert planned("GGUF_TYPES=Q8_0")[-1] == "convert_to_gguf.py"
    assert planned("MAX_LENGTH=512") == list(stages)  # the data stage's own setting
    assert planned("BASE_MODEL=models/other") == list(stages)  # another tokenizer measures lengths
    done = make("eval", "merge", "gguf", *variables)  # the later stages, EPOCHS not typed again
    assert "train_lora.py" not in done and all(s in done for s in stages[2:]), done
    assert done.count("scripts/convert_to_gguf.py") == 1  # the export writes the Modelfile: not rendered twice
    assert "train_lora.py" not in make("-n", "train", *variables)  # trained once, and never again
    assert "convert_to_gguf.py" not in make("-n", "gguf", *variables)
    item = chain(run)
    assert item.status == "PASS" and item.evidence.startswith("9 links hold"), item.evidence
    assert ("1", "recorded") == (lambda row: (row.split()[1], row.split()[2]))(
        next(line for line in make("settings").splitlines() if line.strip().startswith("EPOCHS")))
    only_the_modelfile = make("-n", "all", *variables, "SYSTEM_PROMPT=你是助手")  # re-rendered, not re-exported
    assert "--modelfile-only" in only_the_modelfile and only_the_modelfile.count("convert_to_gguf.py") == 1
    before = (run / "gguf" / "tiny-ft-Q4_K_M.gguf").stat().st_mtime_ns
    rendered = make("gguf", *variables, "SYSTEM_PROMPT=你是助手")  # really: proven again, with the new system
    assert "--modelfile-only" in rendered and (run / "gguf" / "tiny-ft-Q4_K_M.gguf").stat().st_mtime_ns == before
    assert 'SYSTEM """你是助手"""' in (run / "gguf" / "Modelfile").read_text()
    parity = json.loads((run / "gguf" / "deploy_parity.json").read_text())["Modelfile"]
    assert parity["passed"] and parity["reference"]["chats"][0]["messages"][0] == {"role": "system", "content": "你是助手"}
    assert chain(run).status == "PASS"
    (run / "gguf" / "tiny-ft-Q4_K_M.gguf").write_bytes(other_adapters_gguf)  # made from the first adapter
    item = chain(run)
    assert item.status == "FAIL" and "broken link tiny-ft-Q4_K_M.gguf: quant_report.json records" in item.evidence
    assert "make gguf" in item.fix


def test_after_an_adapter_export_a_retrain_by_make_all_leaves_no_export_of_the_old_adapter(finished_run, tiny_model_dir,
                                                                                         tmp_path):
    """`make demo; make gguf-adapter; make all EPOCHS=2`: the full export must not drop the adapter export's record,
    and the adapter export made from the first adapter is made again from the new one."""
    from conftest import run_make, scratch_project

    run = copy_of(finished_run, tmp_path)
    project = scratch_project(tmp_path / "project")
    variables = demo_settings(run, tiny_model_dir)
    run_make("gguf-adapter", *variables, project=project)
    assert chain(run).status == "PASS"
    retrained = run_make("all", *variables, "EPOCHS=2", project=project, check=False)  # acceptance may fail
    assert "train_lora.py" in retrained.stdout and "--lora-adapter" in retrained.stdout, retrained.stdout[-3000:]
    item = chain(run)
    assert item.status == "PASS" and "lora_adapter -> Modelfile.adapter" in item.evidence, item.evidence


def test_a_measurement_is_reused_only_while_every_file_it_read_is_unchanged(tmp_path, monkeypatch):
    from ftkit.acceptance import REUSE_ENV, measured_once

    reads = tmp_path / "gguf"
    reads.mkdir()
    (reads / "model.gguf").write_bytes(b"one")
    calls = []

    def measure():
        calls.append(1)
        return {"n": len(calls)}
    monkeypatch.delenv(REUSE_ENV, raising=False)
    assert [measured_once("k", [reads], {}, measure)["n"] for _ in range(2)] == [1, 2]  # unset: measured each time
    monkeypatch.setenv(REUSE_ENV, str(tmp_path / "kept"))
    assert [measured_once("k", [reads], {}, measure) for _ in range(2)] == [{"n": 3}, {"n": 3, "reused": True}]
    assert measured_once("k", [reads], {"n_gpu_layers": 1}, measure)["n"] == 4  # other settings
    (reads / "model.gguf").write_bytes(b"two")
    assert measured_once("k", [reads], {}, measure)["n"] == 5  # a changed file measures again
    (reads / "Modelfile").write_text("FROM ./model.gguf")
    assert measured_once("k", [reads], {}, measure)["n"] == 6  # and so does a new one
