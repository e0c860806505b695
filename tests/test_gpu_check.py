"""The GPU path's prepared script, in its CPU dry-run mode: the same code path with tiny shapes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_trains_every_mode_and_measures_the_gguf(tmp_path):
    output = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--steps", "6",
                             "--output", str(output), "--work-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["dry_run"] and report["shape"]["hidden_size"] == 256 and report["parameters"] > 3_000_000
    modes = {r["mode"]: r for r in report["training"]}
    assert set(modes) == {"lora", "lora_dense", "qlora", "padding_free"}
    assert set(report["output_layer"]) == {"tiny-llama", "tiny-qwen2.5"}  # 32k and 152k vocabularies
    qwen = {r["mode"]: r for r in report["output_layer"]["tiny-qwen2.5"]}
    assert set(qwen) == {"lora", "lora_dense"} and all(r["loss_fell"] for r in qwen.values())
    assert "output layer, tiny-qwen2.5: supervised positions only" in result.stdout
    for mode in modes.values():
        assert mode["steps"] == 6 and mode["tokens_per_s"] > 0 and mode["peak_memory_gib"] > 0
        assert mode["loss_fell"], mode
    assert set(report["gguf"]) == {"F16", "Q4_K_M"}
    assert all(d["decode_tokens_per_s"] > 0 and d["prompt_tokens_per_s"] > 0 for d in report["gguf"].values())
    assert "MFU = 6 * N_parameters" in result.stdout and "LLaMA-Factory" in result.stdout


def test_without_a_gpu_the_real_check_refuses_clearly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "no CUDA GPU here" in result.stderr and "Traceback" not in result.stderr
