"""Export stage: merge, GGUF conversion/quantization with proof, and the Ollama Modelfile rendered by Go."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import go_render, run_make, run_script, scratch_project

from ftkit.core import families, ollama, prompts
from ftkit.core.cli import UserError

ROOT = Path(__file__).resolve().parents[1]


script = run_script


@pytest.mark.slow
def test_merge_equals_base_plus_adapter(merged):
    report = json.loads((merged.parent / "merge_report.json").read_text())
    v = report["verification"]
    assert v["passed"] and v["max_abs_logit_diff"] < 1e-4 and v["greedy_identical"] == v["prompts"] == 4
    assert v["top1_agree"] == v["top1_decisive_positions"] > 0 and v["dtype"] == "fp32"
    for name in ("model.safetensors", "tokenizer.model", "tokenizer.json", "chat_template.jinja", "generation_config.json"):
        assert (merged / name).exists(), name
    config = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in config


@pytest.mark.slow
def test_merge_after_qlora_training_reloads_the_base_unquantized(tiny_model_dir, prepared_data, tmp_path):
    from ftkit.stages.export.merge import merge_adapter
    from ftkit.stages.train.train import TrainConfig, run_training

    run_training(TrainConfig(base_model=str(tiny_model_dir), train_data=str(prepared_data / "train_train.jsonl"),
                             val_data="none", output_dir=str(tmp_path / "q"), max_steps=4, batch_size=8,
                             use_quantization=True))
    report = merge_adapter(str(tiny_model_dir), str(tmp_path / "q" / "lora_adapter"), str(tmp_path / "m"))
    assert report["dtype"] == "fp32" and report["verification"]["passed"]
    assert "quantization_config" not in json.loads((tmp_path / "m" / "config.json").read_text())


def test_merge_refuses_a_quantized_base(tmp_path):
    from ftkit.stages.export.merge import refuse_quantized

    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"load_in_4bit": True}}))
    with pytest.raises(UserError, match="bitsandbytes-quantized"):
        refuse_quantized(tmp_path, "the base model")


@pytest.mark.slow
def test_merge_door_in_evaluate_model_is_the_same_merge(trained_run, tiny_model_dir, merged, tmp_path):
    out = tmp_path / "via-eval"
    result = script("evaluate_model.py", "--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
                    "--merge-output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    from ftkit.core.io import sha256_file

    assert sha256_file(out / "model.safetensors") == sha256_file(merged / "model.safetensors")


@pytest.mark.slow
def test_gguf_files_are_verified_against_the_merged_model(exported):
    out, result = exported
    report = json.loads((out / "quant_report.json").read_text())
    assert set(report["files"]) == {"F16", "Q8_0", "Q4_K_M"}
    for quant, info in report["files"].items():
        assert Path(info["path"]).name == f"tiny-ft-{quant}.gguf" and Path(info["path"]).stat().st_size == info["size_bytes"]
        assert info["fallback_tensors"] == 0, info  # hidden sizes are multiples of 256: no k-quant fallback
    assert report["files"]["Q4_K_M"]["tensor_types"].get("q4_K", 0) > 0
    v = report["verification"]
    assert v["passed"]
    for quant in ("F16", "Q8_0", "Q4_K_M"):
        assert v[quant]["token_ids"]["identical"] == v[quant]["token_ids"]["prompts"] == 3  # same ids, BOS once
        assert v[quant]["vs_f16"]["positions"] >= 300
    assert v["F16"]["greedy_vs_hf"]["identical"] == v["F16"]["greedy_vs_hf"]["prompts"]  # f16: every token equal
    assert v["F16"]["vs_f16"]["top1_agreement"] == 1.0
    assert v["Q8_0"]["vs_f16"]["top1_agreement"] > 0.95 and v["Q8_0"]["vs_f16"]["mean_kl"] < 0.01
    assert v["Q4_K_M"]["vs_f16"]["top1_agreement"] > 0.8
    sizes = {q: i["size_bytes"] for q, i in report["files"].items()}
    assert sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["F16"]
    assert "top1 vs F16" in result.stdout and not list(out.glob(".*.tmp"))
    # what each type costs on the task: the evaluation's own metrics through llama.cpp, beside the HF model's
    task = report["task_metrics"]
    assert set(task["types"]) == {"F16", "Q8_0", "Q4_K_M"} and task["records"] > 0
    assert task["types"]["F16"]["loss"] == pytest.approx(task["hf"]["loss"], abs=0.01)
    assert task["types"]["Q4_K_M"]["size_vs_f16"] < task["types"]["Q8_0"]["size_vs_f16"] < 1
    assert report["margins"] == {"rougeL_char": 0.02, "loss": 0.02} and "within margin" in result.stdout


@pytest.mark.slow
def test_gguf_evaluates_with_the_same_metrics(exported, trained_run, tiny_model_dir, prepared_data, tmp_path):
    out, _ = exported
    output = tmp_path / "gguf_eval.csv"
    result = script("evaluate_model.py", "--base-model", str(tiny_model_dir), "--gguf", str(out / "tiny-ft-F16.gguf"),
                    "--test-data", str(prepared_data / "train_test.jsonl"), "--output", str(output), "--no-base",
                    "--max-new-tokens", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    via_gguf = json.loads(Path(f"{output}.summary.json").read_text())["aggregate"]["finetuned"]
    hf_output = tmp_path / "hf_eval.csv"
    result = script("evaluate_model.py", "--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
                    "--test-data", str(prepared_data / "train_test.jsonl"), "--output", str(hf_output), "--no-base",
                    "--max-new-tokens", "32")
    via_hf = json.loads(Path(f"{hf_output}.summary.json").read_text())["aggregate"]["finetuned"]
    assert via_gguf["loss"] == pytest.approx(via_hf["loss"], abs=0.01)  # nothing lost on the way to llama.cpp
    assert via_gguf["rougeL_char"] == pytest.approx(via_hf["rougeL_char"], abs=0.05)


CONVERSATIONS = {
    "single turn": [{"role": "user", "content": "中国的首都是哪里？"}],
    "with system": [{"role": "system", "content": "你是一个地理老师。"}, {"role": "user", "content": "日本的首都是哪里？"}],
    "multi-turn": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "1 + 1 = ?"},
                   {"role": "assistant", "content": "2"}, {"role": "user", "content": "再加三呢？"},
                   {"role": "assistant", "content": "等于5。"}, {"role": "user", "content": "谢谢"}],
    "multi-turn no system": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"},
                             {"role": "user", "content": "讲个笑话"}],
}


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_modelfile_template_rendered_by_go_equals_the_training_format(name, tmp_path):
    ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m-Q4_K_M.gguf"))
    template = ollama.template_of(tmp_path / "Modelfile")
    messages = CONVERSATIONS[name]
    expected = prompts.render_llama2_text(prompts.from_messages(messages))
    assert expected.startswith(prompts.BOS_TEXT)
    assert go_render(template, messages) == expected[len(prompts.BOS_TEXT):]  # llama.cpp adds the first BOS


def test_modelfile_system_is_used_when_the_chat_has_none(tmp_path):
    template = families.FAMILIES["llama2"].ollama_template
    messages = [{"role": "user", "content": "你好"}]
    expected = prompts.render_llama2_text(prompts.Conversation((prompts.Turn("你好"),), "你是助手。"))
    assert go_render(template, messages, system="你是助手。") == expected[len(prompts.BOS_TEXT):]
    with_own = [{"role": "system", "content": "自己的"}] + messages
    assert "自己的" in go_render(template, with_own, system="你是助手。")


@pytest.mark.slow
def test_modelfile_written_by_the_guide_command(exported):
    out, _ = exported
    text = (out / "Modelfile").read_text()
    written = ollama.read_modelfile(out / "Modelfile")
    assert (written.family, written.source) == ("llama2", "./tiny-ft-Q8_0.gguf")  # the first non-F16 type asked for, beside it
    assert (written.written_for, written.parser, written.requires) == (ollama.CHECKED_VERSION, None, None)
    for stop in ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "</s>"):
        assert f'PARAMETER stop "{stop}"' in text
    assert "PARAMETER num_ctx 1024" in text  # the tiny model's trained context
    assert 'SYSTEM """你是一个有用的助手。"""' in text
    assert "temperature" not in text  # sampling only where the user asked
    assert ollama.template_of(out / "Modelfile") == families.FAMILIES["llama2"].ollama_template


def test_user_text_cannot_break_the_modelfile_or_a_shell(tmp_path):
    with pytest.raises(UserError, match='must not contain """'):
        ollama.modelfile_text("m.gguf", system='evil"""\nFROM /etc/passwd\nSYSTEM """')
    for bad in ("My Model", "x; rm -rf /", "../up", "", "-rf"):
        with pytest.raises(UserError, match="model name"):
            ollama.check_model_name(bad)
    assert ollama.check_model_name("llama2-finetuned:q4") == "llama2-finetuned:q4"
    bad_name = script("convert_to_gguf.py", "--model-path", str(tmp_path), "--model-name", "a b")
    assert bad_name.returncode == 2 and "model name" in bad_name.stderr


def test_ollama_step_prints_the_commands_when_ollama_is_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("ollama"):
        pytest.skip("ollama is installed here")
    (tmp_path / "Modelfile").write_text("FROM ./m.gguf\n")
    result = script("ollama_create.py", "--model-name", "tiny-ft", "--modelfile", str(tmp_path / "Modelfile"))
    assert result.returncode == 0
    assert f"ollama create tiny-ft -f {tmp_path / 'Modelfile'}" in result.stdout and "ollama run tiny-ft" in result.stdout


def test_unknown_quantization_and_missing_merge_are_clear(tmp_path):
    result = script("convert_to_gguf.py", "--model-path", str(tmp_path), "--quantization", "Q9_X")
    assert result.returncode == 2 and "no config.json" in result.stderr  # checked before the type: nothing to convert
    (tmp_path / "config.json").write_text("{}")
    result = script("convert_to_gguf.py", "--model-path", str(tmp_path), "--quantization", "Q9_X")
    assert result.returncode == 2 and "unknown type" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_adapter_alone_as_a_gguf_on_the_base_reproduces_the_fine_tuned_model(exported, trained_run, tiny_model_dir,
                                                                             prepared_data):
    out, _ = exported
    result = script("convert_to_gguf.py", "--lora-adapter", str(trained_run / "lora_adapter"), "--base-model",
                    str(tiny_model_dir), "--output-dir", str(out), "--model-name", "tiny-ft",
                    "--test-data", str(prepared_data / "train_test.jsonl"), "--system", "你是一个有用的助手。")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "quant_report.json").read_text())
    assert "files" in report and "task_metrics" in report  # the merged export's record is its own, untouched
    assert "adapter_export" not in report
    export = json.loads((out / "adapter_report.json").read_text())
    lora, base = Path(export["lora_gguf"]), Path(export["base_gguf"])
    assert lora.name == "tiny-ft-lora-F16.gguf" and base.name == "tiny-ft-base-F16.gguf"
    assert export["size_bytes"] < export["base_size_bytes"] / 5  # megabytes instead of a whole model
    v = export["verification"]
    assert v["passed"] and v["token_ids"]["identical"] == v["token_ids"]["prompts"] == 3
    assert v["greedy_vs_hf"]["identical"] == 3 and v["vs_merged_f16"]["identical"] == 3
    assert v["vs_merged_f16"]["max_abs_logit_diff"] < 0.05 and v["vs_merged_f16"]["top1_agreement"] == 1.0
    modelfile = out / "Modelfile.adapter"
    written = ollama.read_modelfile(modelfile)
    assert (written.family, written.source, written.adapter) == ("llama2", "./tiny-ft-base-F16.gguf",
                                                                 "./tiny-ft-lora-F16.gguf")
    parity = json.loads((out / "deploy_parity.json").read_text())["Modelfile.adapter"]
    assert parity["passed"] and parity["adapter"] == "tiny-ft-lora-F16.gguf"  # every chat path, on base + adapter
    assert ollama.template_of(modelfile) == ollama.template_of(out / "Modelfile")  # the Go-proven template
    assert ollama.stops_of(modelfile) == ollama.stops_of(out / "Modelfile")
    assert 'SYSTEM """你是一个有用的助手。"""' in modelfile.read_text()
    from llama_cpp import Llama  # both files load as llama.cpp (and so Ollama's runner) loads them

    Llama(model_path=str(base), lora_path=str(lora), n_ctx=64, verbose=False)


def test_adapters_llama_cpp_cannot_carry_are_refused_and_qlora_is_warned(trained_run, tiny_model_dir, tmp_path):
    from ftkit.stages.export.adapter_export import check_convertible

    adapter = tmp_path / "model" / "lora_adapter"
    shutil.copytree(trained_run / "lora_adapter", adapter)
    assert check_convertible(adapter, tiny_model_dir) == []
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": ["lm_head"]}))
    with pytest.raises(UserError, match="lm_head.*export the merged model instead"):
        check_convertible(adapter, tiny_model_dir)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    tokenizer = json.loads((adapter / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    tokenizer["added_tokens"].append({"id": vocab, "content": "<new>", "special": True, "single_word": False,
                                      "lstrip": False, "rstrip": False, "normalized": False})
    (adapter / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(UserError, match="added tokens cannot travel"):
        check_convertible(adapter, tiny_model_dir)
    shutil.copy(trained_run / "lora_adapter" / "tokenizer.json", adapter / "tokenizer.json")
    (adapter.parent / "run_manifest.json").write_text(json.dumps({"arguments": {"use_quantization": True}}))
    assert "QLoRA" in check_convertible(adapter, tiny_model_dir)[0]


def test_make_gguf_adapter_runs_the_adapter_export():
    planned = run_make("-n", "-B", "gguf-adapter", "RUN=local").stdout
    assert "convert_to_gguf.py --lora-adapter models/finetuned/lora_adapter --base-model models/tiny-llama" in planned


@pytest.mark.slow
def test_a_failed_merge_check_keeps_the_previous_model_and_puts_the_new_one_aside(trained_run, tiny_model_dir, merged,
                                                                                  tmp_path, monkeypatch):
    from ftkit.core.io import sha256_file
    from ftkit.stages.export import merge

    output = tmp_path / "merged_model"
    shutil.copytree(merged, output)
    before = sha256_file(output / "model.safetensors")
    monkeypatch.setitem(merge.BOUNDS, "fp32", (0.0, 0.0))  # no merge is that exact: the check fails
    with pytest.raises(UserError, match="merge check failed.*previous .* is untouched"):
        merge.merge_adapter(str(tiny_model_dir), str(trained_run / "lora_adapter"), str(output))
    assert sha256_file(output / "model.safetensors") == before  # nothing the user did not ask to delete
    aside = tmp_path / "merged_model-failed-check"
    assert (aside / "model.safetensors").is_file() and (aside / "config.json").is_file()


def test_merge_keeps_the_checkpoint_dtype_of_a_hub_id_from_the_cache(tiny_model_dir, tmp_path):
    """A Hub id resolves through the Hugging Face cache layout: a bf16 checkpoint merges in bf16, not fp32."""
    snapshot = tmp_path / "hub" / "models--org--tiny-bf16" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model_dir, snapshot)
    config = json.loads((snapshot / "config.json").read_text())
    (snapshot / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    (tmp_path / "hub" / "models--org--tiny-bf16" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny-bf16" / "refs" / "main").write_text("0123abcd")
    code = "import sys; from ftkit.stages.export.merge import _dtype; print(_dtype('auto', sys.argv[1])[0])"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    dtypes = [subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True, env=env,
                             check=True).stdout.strip() for model in ("org/tiny-bf16", str(tiny_model_dir))]
    assert dtypes == ["bf16", "fp32"]


@pytest.mark.slow
def test_greedy_comparison_names_where_answers_part_and_tells_a_tie_from_a_difference(exported, merged):
    """A near-tie (F16 rounding may order two tokens either way) is reported, not failed; a real
    difference fails, with the position."""
    import numpy as np

    from ftkit.core.inference import Decoding, Generation, GGUFChatModel
    from ftkit.core.loading import load_tokenizer
    from ftkit.verify import gguf_checks

    out, _ = exported
    tokenizer = load_tokenizer(str(merged))
    model = GGUFChatModel(str(out / "tiny-ft-F16.gguf"), tokenizer, logits_all=True)
    own = model.generate([prompts.render_ids(c, tokenizer).prompt_ids for c in gguf_checks.check_conversations()],
                         Decoding(max_new_tokens=16))
    first = prompts.render_ids(gguf_checks.check_conversations()[0], tokenizer).prompt_ids
    model.llm.reset()
    model.llm.eval(first)
    row = np.array(model.llm.scores[len(first) - 1], dtype=np.float64)  # a copy: the buffer is reused
    runner_up = int(np.argsort(row)[-2])

    class Reference:  # answers like the GGUF, except the first answer's first token
        def __init__(self, token):
            self.token = token

        def generate(self, ids, decoding, batch_size=1):
            return [Generation("", [self.token] + g.token_ids[1:] if i == 0 else g.token_ids, 0.0)
                    for i, g in enumerate(own)]

    same = gguf_checks.greedy_agreement(model, Reference(own[0].token_ids[0]), tokenizer)
    assert same["identical"] == 3 and same["agree"] and not same["partings"]
    gap = float(row.max() - row[runner_up])
    result = gguf_checks.greedy_agreement(model, Reference(runner_up), tokenizer)
    assert result["partings"][0]["position"] == 0 and result["partings"][0]["reference_token"] == runner_up
    assert result["partings"][0]["logit_margin"] == pytest.approx(gap, abs=1e-4)
    assert result["agree"] == (gap <= gguf_checks.TIE_MARGIN) and result["partings"][0]["tie"] == (gap <= gguf_checks.TIE_MARGIN)


def _llama_loads(path: Path) -> list[ast.Call]:
    """Every `Llama(...)` call in a file, except vocabulary-only reads (no weights, no GPU)."""
    calls = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Llama"]
    return [c for c in calls if not any(k.arg == "vocab_only" for k in c.keywords)]


def test_every_llama_cpp_load_takes_the_gpu_layer_setting():
    """On a GPU host the checks run where the model will run: no load of a GGUF is pinned to the CPU."""
    sources = sorted((ROOT / "ftkit").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    loads = {str(path.relative_to(ROOT)): _llama_loads(path) for path in sources}
    assert sum(map(len, loads.values())) >= 5  # inference, acceptance (2), bench_gguf, gpu_check
    for name, calls in loads.items():
        for call in calls:
            assert any(k.arg == "n_gpu_layers" for k in call.keywords), f"{name}:{call.lineno}"


def test_the_n_gpu_layers_make_variable_reaches_every_stage_that_loads_a_gguf():
    planned = run_make("-n", "-B", "gguf", "gguf-adapter", "acceptance", "bench-gguf", "RUN=local", "N_GPU_LAYERS=7").stdout
    planned = planned.replace("\\\n", " ")  # a recipe's continued lines as one command
    for script in ("convert_to_gguf.py --model-path", "convert_to_gguf.py --lora-adapter", "acceptance_check.py",
                   "bench_gguf.py"):
        line = next(line for line in planned.splitlines() if script in line)
        assert "--n-gpu-layers 7" in line, line
    for script in ("convert_to_gguf.py", "evaluate_model.py", "acceptance_check.py", "bench_gguf.py", "bench_all.py"):
        assert "--n-gpu-layers" in run_script(script, "--help").stdout, script


@pytest.mark.slow
def test_full_logits_are_kept_only_where_they_are_read(exported, merged):
    """llama-cpp-python sizes its score array n_ctx x vocabulary with logits_all (4096 x 151,936 floats
    is 2.5 GB for Qwen): generation does without; losses ask for it and refuse to read unwritten rows."""
    from ftkit.core.inference import Decoding, GGUFChatModel
    from ftkit.core.loading import load_tokenizer

    out, _ = exported
    tokenizer = load_tokenizer(str(merged))
    path = str(out / "tiny-ft-F16.gguf")
    chat = GGUFChatModel(path, tokenizer, n_ctx=2048)
    assert chat.llm.scores.shape[0] < 2048  # one batch of rows, not the context
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "你好"}), tokenizer).prompt_ids
    assert chat.generate([ids], Decoding(max_new_tokens=4))[0].token_ids
    with pytest.raises(ValueError, match="logits_all"):
        chat.answer_losses([(ids, ids[:3])])
    scoring = GGUFChatModel(path, tokenizer, n_ctx=2048, logits_all=True)
    assert scoring.llm.scores.shape[0] == 2048
    assert scoring.answer_losses([(ids, ids[:3])])[0] > 0


def _outputs(prompt_logits, greedy, steps):
    from ftkit.stages.export.merge import Outputs

    return Outputs(prompt_logits, greedy, steps)


def test_the_merge_check_bound_scales_with_the_logits_and_top1_and_ties_are_judged_by_the_reference():
    """bf16 keeps 8 significant bits: at logit scale 100 a correct merge moves logits by ~0.4, which a fixed
    0.2 bound failed; a flipped top-1 token where the reference was clear fails whatever the bound."""
    import torch

    from ftkit.stages.export.merge import verify

    torch.manual_seed(0)
    reference = torch.randn(6, 50).clamp(-3, 3) * 30
    reference[:, 7] = 100.0  # a clear winner everywhere
    steps = reference.clone()
    ref = _outputs([reference], [[7, 7, 7]], [steps[:3]])
    noisy = reference + 0.3 * torch.sign(torch.randn(6, 50))
    ok = verify(ref, _outputs([noisy], [[7, 7, 7]], [steps[:3]]), "bf16")
    assert ok["passed"] and ok["tolerance"] == pytest.approx(4.0) and ok["max_abs_logit_diff"] == pytest.approx(0.3, abs=1e-4)
    assert not verify(ref, _outputs([noisy], [[7, 7, 7]], [steps[:3]]), "fp32")["passed"]  # fp32 is held tighter

    flipped = reference.clone()
    flipped[2, 3] = 101.0  # well inside the bound in value, but the top-1 token changes at a clear position
    bad = verify(ref, _outputs([flipped], [[7, 7, 7]], [steps[:3]]), "bf16")
    assert not bad["passed"] and bad["top1_agree"] == bad["top1_decisive_positions"] - 1

    tied = steps[:3].clone()
    tied[1, 9] = 99.0  # step 1: token 9 one logit behind token 7: within the bf16 bound, a tie
    near = verify(_outputs([reference], [[7, 7, 7]], [tied]), _outputs([reference], [[7, 9, 4]], [tied]), "bf16")
    assert near["passed"] and near["greedy_near_ties"] == 1
    assert near["partings"] == [{"prompt": 0, "position": 1, "merged_token": 9, "reference_token": 7,
                                 "reference_margin": 1.0, "tie": True}]
    far = verify(_outputs([reference], [[7, 7, 7]], [steps[:3]]), _outputs([reference], [[7, 3, 4]], [steps[:3]]), "bf16")
    assert not far["passed"] and far["partings"][0]["tie"] is False


@pytest.mark.slow
def test_merge_holds_the_base_in_memory_once(trained_run, tiny_model_dir, tmp_path, monkeypatch):
    """The reference (base + adapter) is measured before merging rewrites the same weights: one load, not
    two (two copies of a 7B in bf16 are 27 GB)."""
    from transformers import AutoModelForCausalLM

    from ftkit.stages.export import merge

    loads = []
    real = AutoModelForCausalLM.from_pretrained.__func__
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a[0]) or real(cls, *a, **k)))
    report = merge.merge_adapter(str(tiny_model_dir), str(trained_run / "lora_adapter"), str(tmp_path / "merged"))
    assert loads == [str(tiny_model_dir)]
    assert report["verification"]["passed"] and report["verification"]["greedy_identical"] == 4


@pytest.mark.slow
def test_a_hub_id_goes_through_data_train_merge_and_gguf_offline_from_the_cache(tiny_model_dir, prepared_data, tmp_path):
    """BASE_MODEL=org/name with HF_HUB_OFFLINE=1 and the model only in the Hugging Face cache layout (a bf16
    checkpoint, as on the Hub): the tokenizer, its sentencepiece file, the chat template, the dtype and the
    training preset resolve as for a local folder, and every stage's check passes."""
    import torch
    from transformers import AutoModelForCausalLM

    home = tmp_path / "hf"
    repo = home / "hub" / "models--someorg--tiny-chat"
    snapshot = repo / "snapshots" / "5f0c3e1d"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).to(torch.bfloat16).save_pretrained(snapshot)
    for item in tiny_model_dir.iterdir():  # tokenizer files, sentencepiece model, chat template
        if item.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(item, snapshot / item.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    assert json.loads((snapshot / "config.json").read_text())["dtype"] == "bfloat16"

    run = tmp_path / "run"
    variables = ["BASE_MODEL=someorg/tiny-chat", f"HF_HOME={home}", "HF_HUB_OFFLINE=1", "RUN=local",
                 f"RAW_DATA={prepared_data / 'sample_data.json'}", f"DATA_DIR={run / 'data'}", f"MODEL_DIR={run / 'model'}",
                 f"GGUF_DIR={run / 'gguf'}", f"REPORT_DIR={run / 'reports'}", "MODEL_NAME=hub-ft", "EPOCHS=1",
                 "GGUF_TYPES=Q8_0"]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HF_HUB_CACHE")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1")
    result = subprocess.run(["make", "--no-print-directory", "gguf", *variables], capture_output=True, text=True,
                            cwd=scratch_project(tmp_path / "project"), env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "training preset: someorg/tiny-chat: about 3.2 M parameters" in result.stderr  # from the cached config
    assert "--config configs/small-lora.yaml" in result.stdout
    adapter = json.loads((run / "model" / "lora_adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "someorg/tiny-chat"
    merge_report = json.loads((run / "model" / "merge_report.json").read_text())
    assert merge_report["dtype"] == "bf16" and merge_report["verification"]["passed"]  # the checkpoint's dtype, kept
    merged = run / "model" / "merged_model"
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"
    assert (merged / "tokenizer.model").read_bytes() == (tiny_model_dir / "tokenizer.model").read_bytes()  # from the cache
    assert (merged / "chat_template.jinja").is_file()
    quant = json.loads((run / "gguf" / "quant_report.json").read_text())
    assert quant["verification"]["passed"] and set(quant["files"]) == {"F16", "Q8_0"}
    assert quant["verification"]["F16"]["greedy_vs_hf"]["reference_dtype"] == "bf16"
    assert "[INST]" in (run / "gguf" / "Modelfile").read_text()  # the Llama-2 format, detected from the cached template


def test_the_gguf_benchmark_feeds_the_model_on_its_own_device():
    """A model on a GPU takes no CPU tensor: every tensor bench_gguf.py builds names the model's device."""
    tree = ast.parse((ROOT / "bench" / "bench_gguf.py").read_text(encoding="utf-8"))
    tensors = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
               and getattr(node.func, "attr", None) == "tensor" and getattr(node.func.value, "id", None) == "torch"]
    assert tensors and all(any(k.arg == "device" for k in call.keywords) for call in tensors)


def test_checks_ask_llama_cpp_for_the_context_they_use_not_the_trained_one():
    """llama.cpp reserves the KV cache for the whole context: Llama-3.1's 131,072 tokens would be 16 GB."""
    from ftkit.core.inference import CONTEXT_CAP
    from ftkit.verify.gguf_checks import context_for

    assert context_for([40, 120, 300]) == 512
    assert context_for([248]) == 256 and context_for([249]) == 512
    assert context_for([100_000]) == CONTEXT_CAP


@pytest.mark.slow
def test_bench_scale_runs_a_real_shape_through_export_by_hub_id_with_bounded_memory(tmp_path):
    """Qwen2.5-0.5B's real shape (152k vocabulary, 32k context) in bf16, by Hub id from the cache: every
    stage's check passes and no stage holds a second copy of the model or a context-sized buffer (a KV
    cache for the 32,768-token context alone would add 0.4 GB, ~0.4x of this checkpoint). The recorded
    run's figures are in README.md; here the bound leaves room for another machine's allocator."""
    output = tmp_path / "bench_scale.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--models", "qwen2.5-0.5b",
                             "--work-dir", str(tmp_path), "--output", str(output), "--runs", "none"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(output.read_text())
    assert document["checks_passed"]
    (row,) = document["models"]
    assert row["checkpoint_bytes"] > 900 * 2**20  # bf16, 494 M parameters
    assert set(row["stages"]) == {"merge", "convert", "quantize", "verification"}
    for stage, figures in row["stages"].items():
        assert figures["ratio"] <= figures["target"], (stage, figures["ratio"])  # the targets README states
