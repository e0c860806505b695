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
    # --processes 2: the part a host with several GPUs runs, here on two CPU processes (gloo)
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--steps", "6",
                             "--processes", "2", "--output", str(output), "--work-dir", str(tmp_path),
                             "--runs", str(tmp_path / "runs.json")],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["dry_run"] and report["shape"]["hidden_size"] == 256 and report["parameters"] > 3_000_000
    assert report["shape"]["vocab_size"] == 151936 and report["model"] == "tiny Qwen2.5 shape"
    modes = {r["mode"]: r for r in report["training"]}
    assert set(modes) == {"lora", "lora_dense", "lora_padding_free", "lora_liger", "qlora", "qlora_dense"}
    assert "liger-kernel is not installed" in modes.pop("lora_liger")["skipped"]  # not on this CPU machine
    compared = {c["what"]: c for c in report["comparisons"]}
    assert set(compared) == {"sparse vs dense output layer (LoRA)", "sparse vs dense output layer (QLoRA)",
                             "padding-free vs padded"}
    assert all(c["speedup"] > 0 and c["memory_ratio"] > 0 for c in compared.values())
    assert "sparse vs dense output layer (LoRA):" in result.stdout
    for mode in modes.values():
        assert mode["steps"] == 6 and mode["tokens_per_s"] > 0 and mode["peak_memory_gib"] > 0
        assert mode["loss_fell"], mode
    assert not (ROOT / "docs" / "gpu_check.json").exists() or "dry_run" not in (ROOT / "docs" / "gpu_check.json").read_text()
    assert set(report["gguf"]) == {"F16", "Q4_K_M"}
    assert all(d["decode_tokens_per_s"] > 0 and d["prompt_tokens_per_s"] > 0 for d in report["gguf"].values())
    assert "MFU = 4 * N_parameters" in result.stdout and "LLaMA-Factory" in result.stdout
    assert report["cuda_stack"]["torch"].startswith("2.13.0") and "torch 2.13.0" in result.stderr
    several = report["multi_process"]
    assert not (tmp_path / "runs.json").exists()  # a dry run is never recorded as a GPU run
    from ftkit.benchmarks import render_gpu_table

    table = render_gpu_table([report])  # what docs/gpu.md shows of a recorded run
    assert f"`make gpu-check` on {report['gpu']}" in table and "| qlora_dense |" in table
    assert "| sparse vs dense output layer (LoRA) |" in table and "| lora_liger | skipped:" in table
    assert several["processes"] == 2 and set(several["runs"]) == {"ddp", "fsdp", "zero3"}
    assert all(several["runs"][name]["ranks"] == [0, 1] for name in ("ddp", "fsdp"))
    fsdp = several["runs"]["fsdp"]
    assert fsdp["agrees_with_ddp"] and fsdp["adapter_vs_ddp"]["tensors"] == 28 and fsdp["adapter_vs_ddp"]["worst"] > 0
    # on a CPU accelerate runs the FSDP config as data parallelism (in bf16): said, not passed off as FSDP
    assert several["runs"]["ddp"]["distributed_type"] == fsdp["distributed_type"] == "MULTI_CPU"
    assert fsdp["sharded"] is False and "ran as MULTI_CPU (accelerate shards only on GPUs" in result.stdout
    assert "DeepSpeed needs a CUDA GPU" in several["runs"]["zero3"]["skipped"]  # not on a CPU
    assert "multi-process fsdp" in result.stdout and "adapter vs DDP" in result.stdout


def test_without_a_gpu_the_real_check_refuses_clearly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "no CUDA GPU here" in result.stderr and "Traceback" not in result.stderr


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mfu_counts_lora_flops_and_hfu_adds_the_recomputed_forward():
    """LoRA on a frozen base does no weight-gradient matmuls: 4N per token, not full tuning's 6N."""
    gpu_check = _gpu_check_module()
    mfu, hfu = gpu_check.utilisation(7_000_000_000, 1000.0, 989e12, recompute=False)
    assert mfu == pytest.approx(4 * 7e9 * 1000 / 989e12) and hfu == mfu
    _, hfu = gpu_check.utilisation(7_000_000_000, 1000.0, 989e12, recompute=True)
    assert hfu == pytest.approx(1.5 * mfu)
    assert gpu_check.utilisation(10, 1.0, None, False) == (None, None)
    for anchor in gpu_check.ANCHORS:
        assert anchor["source"].startswith("https://"), anchor
    assert all(source for _, source in gpu_check.PEAK_BF16_FLOPS.values())


def test_the_torch_cuda_build_and_the_driver_it_needs_are_named_and_checked():
    gpu_check = _gpu_check_module()
    wheel = gpu_check.TORCH_CUDA_WHEEL
    need = gpu_check.MIN_DRIVER[wheel["cuda_runtime"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    installer = (ROOT / "docker" / "install_python_deps.sh").read_text()
    assert f"CUDA runtime {wheel['cuda_runtime']}" in dockerfile and f"driver >= {need}" in dockerfile
    assert f"TORCH_CUDA_RUNTIME={wheel['cuda_runtime']}" in installer and f"driver >= {need}" in installer
    assert f"torch=={wheel['torch']}" in (ROOT / "requirements.txt").read_text()
    problems = gpu_check.cuda_stack_problems
    assert problems("2.13.0", "13.0", "580.95.05") == []
    assert any("driver 570.124.06 is older than 580.65.06" in p for p in problems("2.13.0", "13.0", "570.124.06"))
    assert any("CPU build" in p for p in problems("2.13.0+cpu", None, None))
    assert any("not the pinned 13.0" in p for p in problems("2.13.0+cu128", "12.8", "575.0"))
    assert problems("2.13.0+cu128", "12.8", "560.1")[-1].startswith("NVIDIA driver 560.1 is older than 570.26")


def test_the_multi_process_part_says_why_it_skips_on_one_gpu(tmp_path):
    gpu_check = _gpu_check_module()
    skipped = gpu_check.multi_process(tmp_path, tmp_path, tmp_path, 1, 4, 2, 256, "fp32")
    assert "needs 2 or more" in skipped["skipped"] and "GPU(s) here" in skipped["skipped"]
    gpu_check.print_multi_process(skipped)


def test_a_sharded_save_with_a_zero_or_missing_tensor_differs_from_the_ddp_save(tmp_path):
    import torch
    from safetensors.torch import save_file

    gpu_check = _gpu_check_module()
    reference = {"a.lora_A.weight": torch.randn(8, 16), "a.lora_B.weight": torch.randn(16, 8) * 0.01}

    def saved(name, tensors):
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / "adapter_model.safetensors"))
        return tmp_path / name

    ddp = saved("ddp", reference)
    close = saved("close", {k: v * 1.02 for k, v in reference.items()})
    zero = saved("zero", {**reference, "a.lora_B.weight": torch.zeros(16, 8)})
    missing = saved("missing", {"a.lora_A.weight": reference["a.lora_A.weight"]})
    assert gpu_check.adapter_difference(close, ddp)["worst"] == pytest.approx(0.02, rel=1e-3)
    assert gpu_check.adapter_difference(zero, ddp) == {"worst": pytest.approx(1.0), "tensor": "a.lora_B.weight",
                                                       "tensors": 2}
    assert gpu_check.adapter_difference(missing, ddp)["worst"] > gpu_check.SAVE_TOLERANCE
