"""Training stage on the real stack (TRL + PEFT + transformers) with the embedded tiny Llama."""
import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, run_make, run_script

from ftkit.config.schema import build_parser, parse
from ftkit.core import prompts
from ftkit.core.cli import UserError
from ftkit.stages.train.train import TrainConfig, encode_split

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "train_lora.py")


train_cli = functools.partial(run_script, "train_lora.py")


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_labels_cover_answer_and_eos_only(prepared_data, tiny_tokenizer):
    encoded = encode_split(str(prepared_data / "train_train.jsonl"), tiny_tokenizer, 1024)
    first = json.loads((prepared_data / "train_train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ids = prompts.render_ids(prompts.from_messages(first["messages"]), tiny_tokenizer)
    row = encoded.rows[0]
    assert row["input_ids"] == ids.input_ids
    assert row["labels"] == [-100] * len(ids.prompt_ids) + ids.answer_ids
    assert row["labels"][-1] == tiny_tokenizer.eos_token_id  # the model learns to stop
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    assert encoded.supervised_tokens == sum(sum(1 for x in r["labels"] if x != -100) for r in encoded.rows)


def test_examples_over_max_length_are_dropped_and_counted(prepared_data, tiny_tokenizer):
    full = encode_split(str(prepared_data / "train_train.jsonl"), tiny_tokenizer, 1024)
    longest = max(len(r["input_ids"]) for r in full.rows)
    cut = encode_split(str(prepared_data / "train_train.jsonl"), tiny_tokenizer, longest - 1)
    assert cut.dropped_too_long == sum(1 for r in full.rows if len(r["input_ids"]) == longest) > 0
    assert len(cut.rows) + cut.dropped_too_long == len(full.rows)
    with pytest.raises(UserError, match="no example fits"):
        encode_split(str(prepared_data / "train_train.jsonl"), tiny_tokenizer, 3)


def test_yaml_config_keys_are_the_flags_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 5\nlora-r: 32\nlearning_rate: 1.0e-3\nuse_quantization: true\n")
    parser = build_parser(TrainConfig, "")
    parsed = parse(TrainConfig, parser, ["--config", str(config), "--epochs", "2", "--no-use-quantization"])
    assert (parsed.epochs, parsed.lora_r, parsed.learning_rate, parsed.use_quantization) == (2.0, 32, 1e-3, False)
    config.write_text("epoch: 5\n")
    with pytest.raises(SystemExit) as exit_info:
        parse(TrainConfig, build_parser(TrainConfig, ""), ["--config", str(config)])
    assert exit_info.value.code == 2


def test_yaml_values_are_converted_by_their_field_type_as_people_write_them(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    # PyYAML reads 2e-4 (no dot) as a string and "3" as a string; both are what people write
    config.write_text('learning_rate: 2e-4\nepochs: "3"\nlora_r: 1.6e1\ngradient_checkpointing: "yes"\n'
                      "group_by_length: off\nval_data: none\n")
    parsed = parse(TrainConfig, build_parser(TrainConfig, ""), ["--config", str(config)])
    assert (parsed.learning_rate, parsed.epochs, parsed.lora_r) == (2e-4, 3.0, 16)
    assert parsed.gradient_checkpointing is True and parsed.group_by_length is False and parsed.val_data is None
    for bad, says in (("lora_r: 2.5", "lora_r: expected a whole number, got 2.5"),
                      ("learning_rate: fast", "learning_rate: expected a number (2e-4, 0.0002), got 'fast'"),
                      ("packing: maybe", "packing: expected true or false, got 'maybe'"),
                      ("eval_strategy: daily", "eval_strategy: 'daily' is not one of epoch, steps, no"),
                      ("base_model: [a, b]", "base_model: expected a text")):
        config.write_text(bad + "\n")
        with pytest.raises(SystemExit) as exit_info:
            parse(TrainConfig, build_parser(TrainConfig, ""), ["--config", str(config)])
        assert exit_info.value.code == 2 and says in capsys.readouterr().err, bad


def test_shipped_presets_parse(tmp_path):
    for preset in sorted((ROOT / "configs").glob("*.yaml")):
        parsed = parse(TrainConfig, build_parser(TrainConfig, ""), ["--config", str(preset)])
        assert parsed.lora_r >= 1, preset.name
        assert preset.read_text().startswith("# make train"), f"{preset.name} must start with the command that runs it"


def test_precision_auto_is_fp32_on_cpu_and_half_precision_needs_a_gpu():
    import torch

    from ftkit.stages.train.train import choose_precision

    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    assert choose_precision("auto") == "fp32"
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        choose_precision("bf16")


def test_4bit_impossible_stops_before_loading_with_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what an unusable install looks like to Python
    from ftkit.stages.train.train import check_4bit_possible

    with pytest.raises(UserError, match="--use-quantization needs bitsandbytes"):
        check_4bit_possible()


@pytest.mark.slow
def test_guide_step3_verbatim_trains_and_writes_every_output(prepared_data, tiny_model_dir, tmp_path):
    out = tmp_path / "finetuned"
    result = train_cli("--base-model", str(tiny_model_dir), "--train-data", str(prepared_data / "train_train.jsonl"),
                       "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(out),
                       "--epochs", "3", "--batch-size", "4", "--learning-rate", "2e-4", "--lora-r", "8", "--lora-alpha", "16")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    evals = [e["eval_loss"] for e in metrics["eval_loss_per_epoch"]]
    assert len(evals) == 3 and evals[-1] < evals[0]  # validation loss fell
    assert metrics["train_loss_last_window"] < metrics["train_loss_first_window"]  # training loss fell
    assert metrics["best_epoch"] == 3.0 and metrics["optimizer_steps"] == 144
    assert metrics["supervised_tokens"] > 0 and metrics["tokens_seen"] > metrics["supervised_tokens"]
    assert metrics["peak_memory_mib"] > 0
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer.model", "chat_template.jinja"):
        assert (out / "lora_adapter" / name).exists(), name
    log = read_log(out / "train_log.jsonl")
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == list(range(1, 145))
    assert all(e["learning_rate"] is not None and e["grad_norm"] is not None for e in steps)
    assert [e["eval_loss"] for e in log if "eval_loss" in e] == evals
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "checkpoints").glob("runs/*/events.out.tfevents.*"))  # TensorBoard
    manifest = json.loads((out / "run_manifest.json").read_text())
    from ftkit.core.artifacts import adapter_digest
    from ftkit.core.io import sha256_file

    assert manifest["status"] == "complete" and manifest["world_size"] == 1 and manifest["num_nodes"] == 1
    assert manifest["processes"] == [{"rank": 0, "node": 0, "host": socket.gethostname()}]
    assert manifest["data"]["train"]["sha256"] == sha256_file(prepared_data / "train_train.jsonl")
    assert manifest["adapter"] == adapter_digest(out / "lora_adapter")
    assert manifest["arguments"]["learning_rate"] == 2e-4 and manifest["versions"]["trl"]
    assert "epoch 3.00: train loss" in result.stderr and "validation loss" in result.stderr


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_ends_with_the_same_steps(prepared_data, tiny_model_dir, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text("".join((prepared_data / "train_train.jsonl").read_text(encoding="utf-8").splitlines(True)[:40]),
                     encoding="utf-8")
    out = tmp_path / "run"
    common = ["--base-model", str(tiny_model_dir), "--train-data", str(small), "--val-data", "none",
              "--output-dir", str(out), "--epochs", "2", "--batch-size", "4", "--save-steps", "4"]
    killed = train_cli(*common, env={"FTKIT_FAULT": "train.step:14"})
    assert killed.returncode == -9  # SIGKILL: no cleanup ran
    assert not (out / "lora_adapter").exists()  # nothing a later stage could take for a finished adapter
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]
    resumed = train_cli(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 20  # 40 examples / 4 per step x 2 epochs, as without the crash
    assert [e["step"] for e in read_log(out / "train_log.jsonl") if "loss" in e] == list(range(1, 21))
    assert (out / "lora_adapter" / "adapter_model.safetensors").exists()


def cpu_has_avx512_bf16() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "avx512_bf16" in cpuinfo.read_text()


@pytest.mark.skipif(not cpu_has_avx512_bf16(), reason="bitsandbytes repacks 4-bit weights only on AVX-512-bf16 CPUs")
def test_without_the_portable_kernel_qlora_gradients_vanish_after_an_evaluation_pass(tiny_model_dir, tiny_tokenizer):
    """The bug the fix below defends against, reproduced: bitsandbytes' own kernel choice on this CPU."""
    import torch
    from bitsandbytes.nn import Linear4bit
    from peft import get_peft_model

    from ftkit.stages.train.train import TrainConfig, load_model, lora_config

    config = TrainConfig(base_model=str(tiny_model_dir), use_quantization=True, lora_r=8)
    model = get_peft_model(load_model(config, "fp32"), lora_config(config, config.lora_dropout))
    for layer in model.modules():
        if isinstance(layer, Linear4bit):
            layer.support_avx512bf16_for_cpu = True  # undo keep_4bit_gradients_on_cpu
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "中国的首都是哪里？", "output": "中国的首都是北京。"}),
                             tiny_tokenizer)
    batch = {"input_ids": torch.tensor([ids.input_ids]),
             "labels": torch.tensor([[-100] * len(ids.prompt_ids) + ids.answer_ids])}
    model.eval()
    with torch.no_grad():
        model(**batch)  # an evaluation pass: bitsandbytes repacks the 4-bit weights
    model.train()
    model(**batch).loss.backward()
    grads = [p.grad.abs().sum().item() for n, p in model.named_parameters() if "lora_B" in n and p.requires_grad]
    assert grads and any(g == 0 for g in grads)  # LoRA layers below a repacked base layer learn nothing


def test_qlora_on_cpu_keeps_lora_gradients_after_an_evaluation_pass(tiny_model_dir, tiny_tokenizer):
    """bitsandbytes 0.50 on CPU zeroes gradients after a no-grad forward unless its bf16 kernel is off."""
    import torch
    from peft import get_peft_model

    from ftkit.stages.train.train import TrainConfig, load_model, lora_config

    config = TrainConfig(base_model=str(tiny_model_dir), use_quantization=True, lora_r=8, learning_rate=1e-2)
    model = get_peft_model(load_model(config, "fp32"), lora_config(config, config.lora_dropout))
    conv = prompts.from_alpaca({"instruction": "中国的首都是哪里？", "output": "中国的首都是北京。"})
    ids = prompts.render_ids(conv, tiny_tokenizer)
    batch = {"input_ids": torch.tensor([ids.input_ids]),
             "labels": torch.tensor([[-100] * len(ids.prompt_ids) + ids.answer_ids])}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.eval()
    with torch.no_grad():
        before = model(**batch).loss.item()  # the evaluation pass that used to break training
    model.train()
    losses = []
    for step in range(8):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        # lora_B starts at zero, so lora_A's gradient is zero on the first step by construction
        checked = "lora_B" if step == 0 else "lora_"
        grads = [p.grad.abs().sum().item() for n, p in model.named_parameters() if checked in n and p.requires_grad]
        assert grads and all(g > 0 for g in grads), f"step {step}: a LoRA layer got zero gradient"
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        model.eval()
        after = model(**batch).loss.item()
    assert after < before and losses[-1] < losses[0]


@pytest.mark.slow
def test_qlora_through_the_script_learns_across_evaluations(prepared_data, tiny_model_dir, tmp_path):
    out = tmp_path / "qlora"
    result = train_cli("--base-model", str(tiny_model_dir), "--train-data", str(prepared_data / "train_train.jsonl"),
                       "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(out),
                       "--epochs", "3", "--batch-size", "8", "--learning-rate", "2e-3", "--use-quantization")
    assert result.returncode == 0, result.stderr[-3000:]
    evals = [e["eval_loss"] for e in json.loads((out / "metrics.json").read_text())["eval_loss_per_epoch"]]
    assert evals[0] > evals[1] > evals[2]  # still learning after the first and second evaluation passes


@pytest.mark.slow
def test_two_process_ddp_really_runs_two_ranks(prepared_data, tiny_model_dir, tmp_path):
    out = tmp_path / "ddp"
    port = str(free_port())
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
           "--main_process_port", port, SCRIPT,
           "--base-model", str(tiny_model_dir), "--train-data", str(prepared_data / "train_train.jsonl"),
           "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(out),
           "--epochs", "2", "--batch-size", "8", "--learning-rate", "2e-3"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["ranks"] == [0, 1] and manifest["world_size"] == 2
    # every rank saves through the trainer: under FSDP / ZeRO-3 gathering the shards is a collective
    assert "rank 0 of 2 took part in saving" in result.stderr and "rank 1 of 2 took part in saving" in result.stderr
    assert not (out / ".lora_adapter.saving").exists() and not (out / "lora_adapter" / "training_args.bin").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 2 * 12  # 192 examples / (8 x 2 ranks) per step, 2 epochs
    evals = [e["eval_loss"] for e in metrics["eval_loss_per_epoch"]]
    assert evals[-1] < evals[0]
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out / "lora_adapter")
    assert model(torch.tensor([[1, 260, 263]])).logits.shape[-1] == 3000


def test_one_meaning_per_make_variable_and_help_shows_the_values_used():
    refused = run_make("-n", "train", "QUANT=1", check=False)
    assert refused.returncode != 0 and "QLORA=1 trains with QLoRA" in refused.stderr and "GGUF_TYPES=" in refused.stderr
    assert "MAX_LENGTH=512 sets" in run_make("-n", "train", "MAX_LEN=512", check=False).stderr
    assert "QLORA=maybe" in run_make("-n", "train", "QLORA=maybe", check=False).stderr
    gguf = run_make("-n", "-B", "gguf", 'GGUF_TYPES=Q8_0 F16', "RUN=local").stdout
    assert "--quantization Q8_0 F16" in gguf
    # one max length for both stages, even while the tiny preset supplies the other hyperparameters
    planned = run_make("-n", "-B", "train", "MAX_LENGTH=512", "RUN=local").stdout
    assert planned.count("--max-length 512") == 2, planned  # prepare_data.py and train_lora.py
    shown = run_make("help").stdout
    assert "EPOCHS=5 [configs/tiny-cpu.yaml]" in shown and "LR=2.0e-3 [configs/tiny-cpu.yaml]" in shown
    assert "EPOCHS=2 BATCH_SIZE=8 [configs/tiny-cpu.yaml]" in run_make("help", "EPOCHS=2").stdout


def test_make_train_passes_every_variable():
    out = run_make("-n", "-B", "train", "EPOCHS=1", "BATCH_SIZE=2", "LR=1e-3", "LORA_R=4", "LORA_ALPHA=8", "QLORA=1",
                   "NUM_GPUS=2", "MODEL_DIR=/tmp/m", "BASE_MODEL=/tmp/base", "RUN=local").stdout.splitlines()[-1]
    assert "accelerate.commands.launch --num_processes 2 --multi_gpu scripts/train_lora.py" in out
    for flag in ("--epochs 1", "--batch-size 2", "--learning-rate 1e-3", "--lora-r 4", "--lora-alpha 8",
                 "--use-quantization", "--output-dir /tmp/m", "--base-model /tmp/base"):
        assert flag in out, flag


@pytest.mark.slow
def test_early_stopping_stops_when_validation_loss_stops_improving(prepared_data, tiny_model_dir, tmp_path):
    lines = (prepared_data / "train_train.jsonl").read_text(encoding="utf-8").splitlines(True)
    small = tmp_path / "small.jsonl"
    small.write_text("".join(lines[:40]), encoding="utf-8")  # 40 examples: overfits within a few epochs
    out = tmp_path / "es"
    result = train_cli("--base-model", str(tiny_model_dir), "--train-data", str(small),
                       "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(out),
                       "--epochs", "40", "--batch-size", "8", "--learning-rate", "5e-3", "--lora-r", "16",
                       "--lora-alpha", "32", "--early-stopping-patience", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    evals = [e["eval_loss"] for e in metrics["eval_loss_per_epoch"]]
    assert metrics["optimizer_steps"] < 40 * 5  # stopped before the 40 epochs
    assert evals[-1] >= min(evals)  # ... because validation loss stopped improving
    assert metrics["final_eval_loss"] == pytest.approx(min(evals), rel=1e-4)  # and kept the best adapter


def test_early_stopping_needs_a_consistent_checkpoint_schedule():
    with pytest.raises(ValueError, match="multiple of --eval-steps"):
        TrainConfig(early_stopping_patience=2, save_steps=7)
    with pytest.raises(ValueError, match="needs validation data"):
        TrainConfig(early_stopping_patience=2, val_data="none")


@pytest.mark.parametrize("family", ["llama2", "qwen2.5", "gemma4"])
def test_sparse_logits_give_the_same_loss_and_lora_gradients(family, tiny_model_dir, family_model, prepared_data,
                                                              monkeypatch):
    """The CPU output layer (supervised positions only, in tiles) against TRL's own head and against
    transformers' full-logits loss: same loss, same gradients, same token accuracy and entropy, including a
    batch row with no supervised token. Gemma 4 soft-caps its logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from ftkit.core.loading import load_tokenizer
    from ftkit.stages.train import output_layer
    from ftkit.stages.train.train import encode_split

    model_dir = str(tiny_model_dir if family == "llama2" else family_model(family))
    tokenizer = load_tokenizer(model_dir)
    rows = encode_split(str(prepared_data / "train_train.jsonl"), tokenizer, 1024).rows[:3]
    rows.append({"input_ids": rows[0]["input_ids"], "labels": [-100] * len(rows[0]["labels"])})  # nothing supervised
    width = max(len(r["input_ids"]) for r in rows)
    pad = tokenizer.pad_token_id
    batch = {"input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows]),
             "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]),
             "labels": torch.tensor([r["labels"] + [-100] * (width - len(r["labels"])) for r in rows])}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert (getattr(model.config.get_text_config(), "final_logit_softcapping", None) is not None) == (family == "gemma4")
    add_fused_lm_head(model, outputs=output_layer.OUTPUTS)
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False))
    supervised = int((batch["labels"][:, 1:] != -100).sum())

    def loss_and_grads(**kwargs):
        model.zero_grad()
        out = model(**batch, **kwargs)
        out.loss.backward()
        stats = (int(out.is_top1.sum()), float(out.entropy.sum())) if kwargs else None
        return out.loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}, stats

    # tiles of 7 rows: the supervised positions span several tiles, as a long batch's do
    monkeypatch.setattr(output_layer, "TILE_BYTES", 7 * 4 * model.config.get_text_config().vocab_size)
    calls = []
    monkeypatch.setattr(output_layer, "_tile", lambda *a, _real=output_layer._tile: calls.append(1) or _real(*a))
    try:
        output_layer.install()
        sparse = loss_and_grads(fused_lm_head=True)
        assert len(calls) == -(-supervised // 7)  # ours ran, on the supervised positions only, 7 at a time
        output_layer.uninstall()
        trl = loss_and_grads(fused_lm_head=True)  # TRL's own head (on the CPU: every position, tiled)
        assert len(calls) == -(-supervised // 7)
    finally:
        output_layer.install()
    full = loss_and_grads()  # transformers' own loss over the full logits
    assert sparse[0] == pytest.approx(trl[0], rel=1e-6) and sparse[0] == pytest.approx(full[0], rel=1e-5)
    assert sparse[2][0] == trl[2][0] and sparse[2][1] == pytest.approx(trl[2][1], rel=1e-5)
    assert len(sparse[1]) > 0
    for name, grad in sparse[1].items():
        assert grad.abs().sum() > 0, name
        for reference in (trl[1][name], full[1][name]):  # float32 rounding: measured at most 7e-6 (Gemma 4's tanh)
            assert (grad - reference).norm() <= 2e-5 * reference.norm(), name


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_the_cpu_output_layer_is_exact_where_the_target_s_probability_underflows(softcap):
    """A target 200 logits below the best has probability e^-200: zero in float32. Its log-probability and
    gradient still equal torch's log-softmax, while training and in evaluation."""
    import torch

    from ftkit.stages.train import output_layer

    function = output_layer._make_function()
    weight = torch.tensor([[-100.0, 0.0], [100.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 2])
    for grad in (True, False):
        hidden = torch.tensor([[1.0, 0.0], [0.5, 2.0]], requires_grad=grad)
        log_probs, entropy, _, _, top = function.apply(hidden, weight, targets, 1.0, softcap, 1.0, output_layer.OUTPUTS)
        reference_hidden = hidden.detach().clone().requires_grad_(grad)
        logits = reference_hidden @ weight.t()
        if softcap:
            logits = softcap * torch.tanh(logits / softcap)
        reference = torch.log_softmax(logits, dim=1)
        torch.testing.assert_close(log_probs, reference[torch.arange(2), targets])
        torch.testing.assert_close(entropy, -(reference.exp() * reference).sum(dim=1), rtol=1e-4, atol=1e-5)
        assert top.tolist() == [False, False] and torch.isfinite(log_probs).all()
        if grad:
            log_probs.sum().backward()
            reference[torch.arange(2), targets].sum().backward()
            torch.testing.assert_close(hidden.grad, reference_hidden.grad)


def test_the_cpu_output_layer_leaves_a_trainable_output_layer_to_trl():
    """A trainable (or biased) output layer needs a weight gradient, which the CPU layer does not compute."""
    import torch

    from ftkit.stages.train import output_layer

    hidden, weight = torch.zeros(3, 4), torch.zeros(10, 4)
    assert output_layer.handles(hidden, weight, None, output_layer.OUTPUTS)
    assert not output_layer.handles(hidden, weight.requires_grad_(), None, output_layer.OUTPUTS)
    assert not output_layer.handles(hidden, weight.detach(), torch.zeros(10), ("log_probs",))
    assert not output_layer.handles(hidden, weight.detach(), None, ("log_probs", "mean_logits"))


# --- training at scale: sharding, presets -------------------------------------------------------

def test_fsdp_plus_qlora_packs_4bit_weights_in_shardable_storage_and_ddp_alone_pins_devices(monkeypatch):
    import torch

    from ftkit.stages.train.train import load_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU host's placement decision
    monkeypatch.setenv("LOCAL_RANK", "1")
    config = TrainConfig(use_quantization=True)
    ddp = load_kwargs(config, "bf16")
    assert ddp["device_map"] == {"": 1}  # DDP: the whole model on this rank's GPU
    assert getattr(ddp["quantization_config"], "bnb_4bit_quant_storage", torch.uint8) == torch.uint8
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    fsdp = load_kwargs(config, "bf16")
    assert fsdp["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16  # FSDP shards float storage only
    assert "device_map" not in fsdp  # FSDP places and shards the model itself
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert "device_map" not in load_kwargs(TrainConfig(), "bf16")


def test_the_fsdp_config_wraps_each_familys_own_decoder_layer(family_model):
    """accelerate wraps the classes in the model's _no_split_modules when the config names none: one
    file for Llama and Qwen (a hard-coded LlamaDecoderLayer failed every Qwen model)."""
    import yaml
    from accelerate.utils.dataclasses import get_module_class_from_name
    from transformers import AutoModelForCausalLM

    fsdp = yaml.safe_load((ROOT / "configs" / "accelerate" / "fsdp.yaml").read_text())["fsdp_config"]
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp
    for name, layer in (("llama3", "LlamaDecoderLayer"), ("qwen2.5", "Qwen2DecoderLayer"), ("qwen3", "Qwen3DecoderLayer")):
        model = AutoModelForCausalLM.from_pretrained(family_model(name))
        assert set(model._no_split_modules) == {layer}
        assert get_module_class_from_name(model, layer) is type(model.model.layers[0])


@pytest.mark.slow
def test_the_trainer_arguments_exist_before_the_model_loads(prepared_data, tiny_model_dir, tmp_path, monkeypatch):
    """DeepSpeed ZeRO-3 partitions weights while they load only inside the context the trainer's
    arguments open (transformers' HfDeepSpeedConfig); a model loaded first is whole on every rank."""
    import ftkit.stages.train.train as train

    order = []
    for name in ("sft_config", "load_model"):
        real = getattr(train, name)
        monkeypatch.setattr(train, name, functools.partial(lambda real, name, *a, **k: order.append(name) or real(*a, **k),
                                                           real, name))
    train.run_training(TrainConfig(base_model=str(tiny_model_dir), train_data=str(prepared_data / "train_train.jsonl"),
                                   val_data="none", output_dir=str(tmp_path / "run"), max_steps=1, batch_size=2))
    assert order == ["sft_config", "load_model"]
    assert (tmp_path / "run" / "lora_adapter" / "adapter_model.safetensors").is_file()


def _seven_b_in_the_hub_cache(home: Path) -> None:
    """A Qwen2.5-7B config (no weights: the preset needs only the shape) in the Hugging Face cache layout."""
    snapshot = home / "hub" / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / "a09a3545"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a09a3545")
    (snapshot / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False}))


def test_a_preset_is_picked_by_parameter_count_printed_and_overridable(tmp_path, monkeypatch, tiny_model_dir):
    from ftkit.config import presets

    home = tmp_path / "hf"
    _seven_b_in_the_hub_cache(home)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    preset, why = presets.choose("Qwen/Qwen2.5-7B-Instruct")
    assert preset == "configs/7b-lora.yaml" and "about 7.62 B parameters" in why and "config.json" in why
    assert presets.choose("Qwen/Qwen2.5-7B-Instruct", qlora=True)[0] == "configs/7b-qlora.yaml"
    assert presets.choose(str(tiny_model_dir))[0] == "configs/small-lora.yaml"
    assert presets.choose("meta-llama/Llama-3.1-70B-Instruct")[0] == "configs/large-lora.yaml"  # from the name
    assert presets.choose("Qwen/Qwen2.5-0.5B")[0] == "configs/small-lora.yaml"
    assert presets.choose("someone/mystery")[0] is None
    for _, lora, qlora in presets.SIZE_CLASSES:
        assert (ROOT / lora).is_file() and (ROOT / qlora).is_file()
    assert "use_quantization: true" in (ROOT / "configs" / "7b-qlora.yaml").read_text()

    base = ["-n", "-B", "train", "BASE_MODEL=Qwen/Qwen2.5-7B-Instruct", "RUN=local", f"HF_HOME={home}"]
    planned = run_make(*base)
    assert "--config configs/7b-lora.yaml" in planned.stdout and "gradient" not in planned.stdout
    assert planned.stderr.count("training preset: Qwen/Qwen2.5-7B-Instruct: about 7.62 B") == 1  # said once
    assert "--config configs/7b-qlora.yaml" in run_make(*base, "QLORA=1").stdout
    assert "--config configs/llama2-7b-lora.yaml" in run_make(*base, "TRAIN_CONFIG=configs/llama2-7b-lora.yaml").stdout
    assert "--config" not in run_make(*base, "TRAIN_CONFIG=").stdout
    assert "--config configs/tiny-cpu.yaml" in run_make("-n", "-B", "train", "RUN=local").stdout  # the embedded model
