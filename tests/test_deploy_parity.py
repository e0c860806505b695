"""Every path a chat can take to the model in Ollama, and the GGUF's own template in llama-server, renders
the training prompt: the pinned chat templates, Ollama's path selection (tests/go/ollama_chat.go), the
real llama-server built from the submodule, the Modelfile per Ollama version, `make serve`."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, go_render, run_script, scratch_project

from ftkit.core import families, ollama, prompts
from ftkit.core.cli import UserError
from ftkit.verify import deploy_parity

FAMILIES = ("llama2", "llama3", "qwen2.5", "qwen3", "deepseek-r1", "gemma4")
# the families whose make all (tests/test_families.py) trains with thinking off: llama-server is asked here
# directly; the others' runs prove every path per think value in their own deployment check
SERVED = ("llama2", "llama3", "qwen2.5", "qwen3", "gemma4")
ARCHITECTURE = {"llama2": "llama", "llama3": "llama", "qwen2.5": "qwen2", "qwen3": "qwen3", "deepseek-r1": "qwen2",
                "gemma4": "gemma4"}
# where each family's Modelfile (as ftkit writes it) sends a chat on Ollama 0.33, by OLLAMA_GO_TEMPLATE
EXPECTED_PATHS = {
    "llama2": {"": "go_template", "0": "llama_server", "1": "go_template"},   # no capability to prefer
    "llama3": {"": "llama_server", "0": "llama_server", "1": "go_template"},  # the GGUF template mentions tools
    "qwen2.5": {"": "llama_server", "0": "llama_server", "1": "go_template"},
    "qwen3": {"": "go_template", "0": "go_template", "1": "go_template"},     # PARSER passthrough keeps the TEMPLATE
    "deepseek-r1": {"": "go_template", "0": "go_template", "1": "go_template"},  # so does DeepSeek-R1's
    "gemma4": {"": "llama_server", "0": "llama_server", "1": "go_template"},  # its GGUF template has tool calls
}


@pytest.fixture(scope="module")
def tokenizer_of(family_tokenizer, tiny_tokenizer):
    return lambda name: tiny_tokenizer if name == "llama2" else family_tokenizer(name)


# --- the pinned templates ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("llama3", "qwen3"))
def test_the_pinned_template_renders_the_training_text_whatever_a_caller_passes(name, tokenizer_of):
    tokenizer, family = tokenizer_of(name), families.get(name)
    original = families.original_template(tokenizer.chat_template)
    assert original != tokenizer.chat_template and "{%- set " in tokenizer.chat_template
    for messages, system in deploy_parity.SHAPES.values():
        chat = deploy_parity.with_system(messages, system)
        trained = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True, chat_template=original,
                                                **family.pins)
        for passed in ({}, {"enable_thinking": True}, {"enable_thinking": False}, {"date_string": "01 Jan 2031"}):
            assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True, **passed) == trained
    # and the original is what the pin overrides: unpinned, a caller changes the prompt
    changed = {"llama3": {"date_string": "01 Jan 2031"}, "qwen3": {"enable_thinking": True}}[name]
    chat = deploy_parity.SHAPES["one turn, default system"][0]
    assert (tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True, chat_template=original,
                                          **changed)
            != tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))


def test_pinning_is_idempotent_keeps_the_original_and_leaves_unpinned_families_alone(tokenizer_of, tmp_path):
    tokenizer = tokenizer_of("llama3")
    pinned = tokenizer.chat_template
    original = families.original_template(pinned)
    assert families.pin_template(pinned, families.get("llama3").pins) == pinned
    assert families.pin_template(original, families.get("llama3").pins) == pinned
    families.write_original_template(tokenizer, tmp_path)
    assert (tmp_path / families.ORIGINAL_TEMPLATE_FILE).read_text(encoding="utf-8") == original
    for name in ("llama2", "qwen2.5"):  # nothing pinned: the model's own template, untouched
        template = tokenizer_of(name).chat_template
        assert families.original_template(template) == template and not families.get(name).pins


# --- the Modelfile per Ollama version ------------------------------------------------------------------

def test_the_modelfile_names_a_parser_and_requires_only_where_the_version_knows_them(tmp_path):
    qwen3 = families.get("qwen3")
    assert ollama.directives_for(qwen3, ollama.CHECKED_VERSION) == ("passthrough", "0.14.0")
    assert ollama.directives_for(qwen3, "0.13.2") == ("passthrough", None)  # PARSER yes, REQUIRES unknown
    assert ollama.directives_for(qwen3, "0.11.4") == (None, None)  # no PARSER: the TEMPLATE renders every chat there
    for name in ("llama2", "llama3", "qwen2.5"):
        assert ollama.directives_for(families.get(name), ollama.CHECKED_VERSION) == (None, None)
    with pytest.raises(UserError, match="too old"):
        ollama.modelfile_text("m.gguf", family=qwen3, ollama_version="0.2.9")
    with pytest.raises(UserError, match="expected a version"):
        ollama.check_version("latest")
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"), family=qwen3, system="你好",
                                  ollama_version="0.13.2")
    written = ollama.read_modelfile(path)
    assert (written.family, written.written_for, written.parser, written.requires, written.system, written.source) == \
        ("qwen3", "0.13.2", "passthrough", None, "你好", "./m.gguf")


def test_ollama_create_refuses_an_ollama_older_than_the_modelfile_needs(tmp_path):
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"), family=families.get("qwen3"))
    with pytest.raises(UserError, match=r"needs Ollama >= 0\.14\.0; this machine has 0\.13\.0.*OLLAMA_VERSION=0\.13\.0"):
        ollama.check_installed_version(path, "0.13.0")
    ollama.check_installed_version(path, "0.14.0")
    ollama.check_installed_version(path, None)  # not installed: the commands are printed instead
    parser_only = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"), family=families.get("qwen3"),
                                         ollama_version="0.13.2")
    assert "needs >= 0.12.0" in parser_only.read_text()  # PARSER, no REQUIRES: still not for an Ollama before 0.12
    with pytest.raises(UserError, match=r"needs Ollama >= 0\.12\.0"):
        ollama.check_installed_version(parser_only, "0.11.4")
    older = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"), family=families.get("qwen3"),
                                   ollama_version="0.11.4")
    ollama.check_installed_version(older, "0.11.4")


# --- Ollama's path selection, followed by the Go harness --------------------------------------------------

def route(modelfile: ollama.Modelfile, gguf_template: str, family: str, messages, think=None, env="",
          version=ollama.CHECKED_VERSION, tools=None) -> dict:
    [result] = deploy_parity.ollama_routes([{
        "modelfile": {"template": modelfile.template or "", "system": modelfile.system or "",
                      "parser": modelfile.parser or "", "renderer": modelfile.renderer or ""},
        "gguf_chat_template": gguf_template, "model_family": family, "ollama_version": version,
        "env": {"OLLAMA_GO_TEMPLATE": env}, "messages": messages, "think": think, "tools": tools or []}])
    return result


def ftkit_modelfile(name: str, tmp_path, **kwargs) -> ollama.Modelfile:
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m-Q4_K_M.gguf"), family=families.get(name),
                                  **kwargs)
    return ollama.read_modelfile(path)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_modelfile_lands_on_a_proven_path_as_ollama_decides(name, tokenizer_of, tmp_path):
    tokenizer = tokenizer_of(name)
    modelfile = ftkit_modelfile(name, tmp_path, system="你是一个地理老师。")
    chat = [{"role": "user", "content": "日本的首都是哪里？"}]
    trained_text, _ = deploy_parity.training_prompt(tokenizer, deploy_parity.with_system(chat, modelfile.system))
    for env, path in EXPECTED_PATHS[name].items():
        for think in (None, False):
            result = route(modelfile, tokenizer.chat_template, ARCHITECTURE[name], chat, think, env)
            assert result["path"] == path, (env, think, result)
            assert "thinking" not in result["capabilities"]  # no family declares thinking: it was trained without
            if path == "go_template":
                assert result["prompt"] == trained_text
            else:  # what Ollama sends llama-server: the Modelfile SYSTEM first, enable_thinking only when think is set
                sent = result["llama_server"]
                assert sent["messages"][0] == {"role": "system", "content": modelfile.system}
                assert sent.get("chat_template_kwargs") == (None if think is None else {"enable_thinking": False})
        refused = route(modelfile, tokenizer.chat_template, ARCHITECTURE[name], chat, True, env)
        assert refused["path"] == "refused" and "does not support thinking" in refused["error"]
    before = route(modelfile, tokenizer.chat_template, ARCHITECTURE[name], chat, None, "0", ollama.LAST_GO_ONLY_VERSION)
    assert before["path"] == "go_template" and before["prompt"] == trained_text  # before 0.30: always the TEMPLATE


def test_the_harness_follows_ollama_where_ftkit_modelfiles_do_not_go(tokenizer_of, tmp_path):
    gguf_template = tokenizer_of("qwen3").chat_template
    chat = [{"role": "user", "content": "你好"}]
    # what the issue saw: a Qwen3 Modelfile without PARSER goes to llama-server, thinking on by default
    bare = ftkit_modelfile("qwen3", tmp_path, ollama_version="0.11.4")
    result = route(bare, gguf_template, "qwen3", chat)
    assert result["path"] == "llama_server" and result["think"] is True
    assert result["llama_server"]["chat_template_kwargs"] == {"enable_thinking": True}
    assert {"thinking", "tools"} <= set(result["capabilities"])
    assert route(bare, gguf_template, "qwen3", chat, env="yes")["path"] == "go_template"  # unparsable: true
    # Ollama strips thinking from earlier assistant turns of a qwen3 model (filterThinkTags)
    history = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\n想想</think>\n\n2"},
               {"role": "user", "content": "再加1？"}]
    sent = route(bare, gguf_template, "qwen3", history)["llama_server"]["messages"]
    assert sent[1]["content"] == "2"
    # PARSER qwen3 declares tools the TEMPLATE cannot render; passthrough declares nothing, so tools are refused
    with_parser = ftkit_modelfile("qwen3", tmp_path)
    assert route(with_parser, gguf_template, "qwen3", chat, tools=[{"type": "function"}])["error"].endswith("tools")
    qwen3_parser = ollama.Modelfile(template=with_parser.template, parser="qwen3")
    assert route(qwen3_parser, gguf_template, "qwen3", chat)["capabilities"] == ["completion", "tools"]
    # a RENDERER bypasses the TEMPLATE: a path nothing here proves
    assert route(ollama.Modelfile(template=with_parser.template, renderer="qwen3.5"), gguf_template, "qwen3",
                 chat)["path"] == "renderer"
    # an Ollama that predates PARSER refuses the file
    too_old = route(with_parser, gguf_template, "qwen3", chat, version="0.11.4")
    assert too_old["path"] == "refused" and "PARSER" in too_old["error"]
    # no GGUF template: nothing to prefer, the TEMPLATE renders
    assert route(bare, "", "qwen3", chat)["path"] == "go_template"


def test_a_chat_on_an_unproven_path_fails_the_check(tokenizer_of, tmp_path):
    modelfile = ftkit_modelfile("qwen3", tmp_path)
    modelfile.renderer = "qwen3.5"
    checks = deploy_parity.PromptChecks(server=None, tokenizer=tokenizer_of("qwen3"))
    checks.ollama(deploy_parity.ollama_cases(modelfile, tokenizer_of("qwen3").chat_template, "qwen3"))
    summary = checks.summary()
    assert summary["failed"] > 0 and summary["ollama_paths"].get("renderer")
    assert "unproven path: renderer" in summary["failures"][0]["problem"]


def test_the_go_harness_fills_an_old_style_template_per_exchange():
    template = "{{ if .System }}S:{{ .System }} {{ end }}U:{{ .Prompt }} A:{{ .Response }};"
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert go_render(template, chat, system="sys") == "S:sys U:a A:b;U:c A:"


# --- the real llama-server -------------------------------------------------------------------------------

def f16_gguf(name: str, family_run, request=None) -> Path:
    """The F16 GGUF of a family's `make all` (llama2: the exported fixture's, asked for only then, so a family's
    worker does not build the Llama-2 export too)."""
    if name == "llama2":
        return request.getfixturevalue("exported")[0] / "tiny-ft-F16.gguf"
    run, result, _ = family_run(name)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run / "gguf" / f"{name}-finetuned-F16.gguf"


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVED)
def test_llama_server_renders_every_family_gguf_template_as_trained(name, family_run, request, tokenizer_of):
    """Four shapes x enable_thinking unset/false/true x the runtime's date and a foreign one, straight from
    llama-server's chat path (/apply-template) and its tokenizer."""
    from ftkit.verify.llama_server import LlamaServer

    tokenizer = tokenizer_of(name)
    with LlamaServer(f16_gguf(name, family_run, request)) as server:
        for messages, system in deploy_parity.SHAPES.values():
            chat = deploy_parity.with_system(messages, system)
            text, ids = deploy_parity.training_prompt(tokenizer, chat)
            for think in (None, False, True):
                for date in (None, "01 Jan 2031"):
                    kwargs = {k: v for k, v in (("enable_thinking", think), ("date_string", date)) if v is not None}
                    rendered = server.apply_template(chat, kwargs or None)
                    assert rendered == text, (name, chat, kwargs, rendered)
                    assert server.tokenize(rendered) == ids


@pytest.mark.slow
@pytest.mark.parametrize("name", ("llama3", "qwen3"))
def test_the_unpinned_template_renders_another_prompt_in_llama_server(name, family_run, tokenizer_of, tmp_path):
    from ftkit.verify.llama_server import LlamaServer

    unpinned = with_unpinned_template(f16_gguf(name, family_run), tmp_path, tokenizer_of(name))
    chat = deploy_parity.SHAPES["one turn, default system"][0]
    text, _ = deploy_parity.training_prompt(tokenizer_of(name), chat)
    sent = {"llama3": None, "qwen3": {"enable_thinking": True}}[name]  # llama3: the runtime's date is today
    with LlamaServer(unpinned) as server:
        assert server.apply_template(chat, sent) != text


def with_unpinned_template(gguf: Path, folder: Path, tokenizer) -> Path:
    """A copy of `gguf` whose chat template is the model's own again (gguf-py's gguf_new_metadata.py)."""
    out = folder / gguf.name
    original = folder / "original.jinja"
    original.write_text(families.original_template(tokenizer.chat_template), encoding="utf-8")
    script = ROOT / "llama.cpp" / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py"
    subprocess.run([sys.executable, str(script), str(gguf), str(out), "--chat-template-file", str(original), "--force"],
                   check=True, capture_output=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ("llama3", "qwen2.5", "qwen3"))
def test_the_gguf_stage_records_the_deployment_check_of_every_path(name, family_run):
    run, result, _ = family_run(name)
    assert result.returncode == 0, result.stderr[-3000:]
    evidence = json.loads((run / "gguf" / deploy_parity.EVIDENCE).read_text())["Modelfile"]
    assert evidence["passed"] and evidence["gguf_template_pinned"]
    prompts_ = evidence["prompts"]
    shapes, thinks = len(deploy_parity.SHAPES), len(deploy_parity.THINK_VALUES)
    conditions = len(evidence["ollama_conditions"])
    assert sum(prompts_["ollama_paths"].values()) == shapes * thinks * conditions
    assert prompts_["ollama_paths"].get("refused") == shapes * conditions  # think=true: a clear refusal
    if EXPECTED_PATHS[name][""] == "llama_server":
        assert prompts_["ollama_paths"]["llama_server"] > 0
    assert prompts_["failed"] == 0 and prompts_["checked"] >= shapes * thinks * 2
    answers = evidence["answers"]
    assert answers["agree"] and answers["questions"] == deploy_parity.ANSWER_QUESTIONS
    assert answers["gguf"] == f"{name}-finetuned-F16.gguf"
    # the merged model carries the pinned template, with the model's own beside it
    merged = run / "model" / "merged_model"
    template = (merged / "chat_template.jinja").read_text(encoding="utf-8")
    assert template == families.pin_template(template, families.get(name).pins)
    original = merged / families.ORIGINAL_TEMPLATE_FILE
    assert original.is_file() == bool(families.get(name).pins)
    if original.is_file():
        assert families.pin_template(original.read_text(encoding="utf-8"), families.get(name).pins) == template


@pytest.mark.slow
@pytest.mark.xdist_group("family-llama3")
def test_acceptance_fails_when_the_gguf_carries_the_unpinned_template(family_run, tokenizer_of, tmp_path):
    from ftkit.acceptance import Thresholds, run_checks
    from ftkit.core.artifacts import Paths

    run, result, _ = family_run("llama3")
    assert result.returncode == 0, result.stderr[-3000:]
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.lock"))
    target = copy / "gguf" / "llama3-finetuned-Q4_K_M.gguf"
    unpinned = with_unpinned_template(target, tmp_path, tokenizer_of("llama3"))
    shutil.copy(unpinned, target)
    paths = Paths(str(copy / "data"), "train", str(copy / "model"), str(copy / "reports" / "evaluation_results.csv"),
                  str(copy / "gguf"), str(copy / "reports" / "training_report.md"))
    items = {i.key: i for i in run_checks(paths, Thresholds(min_records=10),
                                          only={"deploy.loads", "deploy.modelfile", "deploy.parity"})}
    assert items["deploy.loads"].status == "PASS"
    assert items["deploy.parity"].status == "FAIL", items["deploy.parity"]
    assert "llama_server" in items["deploy.parity"].evidence and "Today Date" in items["deploy.parity"].evidence
    # the Modelfile is ftkit's: only the GGUF's template changed (a WARN would be the quantized type's cost alone)
    modelfile = items["deploy.modelfile"]
    assert modelfile.status == "PASS" or (modelfile.status == "WARN" and "beyond the margins" in modelfile.evidence)


@pytest.mark.slow
@pytest.mark.xdist_group("family-llama3")
def test_the_adapter_export_carries_the_pinned_template_and_passes_the_deployment_check(family_run, tokenizer_of,
                                                                                        tmp_path):
    from conftest import run_make

    run, result, variables = family_run("llama3")
    assert result.returncode == 0, result.stderr[-3000:]
    adapter = run_make("gguf-adapter", *variables, check=False)
    assert adapter.returncode == 0, adapter.stdout[-3000:] + adapter.stderr[-3000:]
    base = run / "gguf" / "llama3-finetuned-base-F16.gguf"
    template, _ = deploy_parity.gguf_template_and_architecture(base)
    assert template == tokenizer_of("llama3").chat_template  # pinned, though the base model's own is not
    evidence = json.loads((run / "gguf" / deploy_parity.EVIDENCE).read_text())
    assert evidence["Modelfile.adapter"]["passed"] and evidence["Modelfile.adapter"]["adapter"].endswith("lora-F16.gguf")
    assert evidence["Modelfile"]["passed"]  # the merged export's evidence is kept
    # a base GGUF with the model's own template is refused, not silently deployed
    from ftkit.stages.export.adapter_export import check_base_template

    with pytest.raises(UserError, match="not pinned"):
        check_base_template(with_unpinned_template(base, tmp_path, tokenizer_of("llama3")), tokenizer_of("llama3"))


# --- make serve ----------------------------------------------------------------------------------------

def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.slow
@pytest.mark.xdist_group("family-qwen2.5")
def test_make_serve_answers_the_openai_client_as_the_hf_model_and_stops_with_the_target(family_run, tmp_path):
    from openai import OpenAI

    from ftkit.verify.llama_server import free_port

    run, result, variables = family_run("qwen2.5")
    assert result.returncode == 0, result.stderr[-3000:]
    evidence = json.loads((run / "gguf" / deploy_parity.EVIDENCE).read_text())["Modelfile"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    serve = subprocess.Popen(["make", "--no-print-directory", "serve", *variables, f"SERVE_PORT={port}",
                              f"SERVE_GGUF={run / 'gguf' / 'qwen2.5-finetuned-F16.gguf'}"],
                             cwd=scratch_project(tmp_path / "project"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", serve)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        assert [m.id for m in client.models.list().data] == ["qwen2.5-finetuned"]
        # the HF model's greedy answers, recorded by the gguf stage: those it finished (not cut by the token limit,
        # which may fall inside a character) and that llama-server matched token for token there (not a near-tie)
        reference = evidence["reference"]
        tied = {p["question"] for p in evidence["answers"]["partings"]}
        complete = [c for n, c in enumerate(reference["chats"]) if n not in tied and len(c["token_ids"]) < reference["max_tokens"]]
        assert complete
        for chat in complete:
            reply = client.chat.completions.create(model="qwen2.5-finetuned", messages=chat["messages"], temperature=0,
                                                   max_tokens=64)
            assert reply.choices[0].message.content.strip() == chat["text"]
        chat = complete[0]
        whole = client.chat.completions.create(model="qwen2.5-finetuned", messages=chat["messages"], temperature=0,
                                               max_tokens=64)
        assert whole.choices[0].finish_reason == "stop"  # it ended its turn, and the end token is not in the text
        assert "<|im_end|>" not in whole.choices[0].message.content
        stream = client.chat.completions.create(model="qwen2.5-finetuned", messages=chat["messages"], temperature=0,
                                                max_tokens=64, stream=True)
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert len(pieces) > 1 and "".join(pieces) == whole.choices[0].message.content
    finally:
        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C in the terminal that runs `make serve`
        out = serve.communicate(timeout=60)[0]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)  # nothing is left listening
    assert "serving qwen2.5-finetuned-F16.gguf" in out


def test_serve_refuses_a_missing_modelfile_and_a_bad_port(tmp_path):
    result = run_script("serve.py", "--modelfile", str(tmp_path / "Modelfile"))
    assert result.returncode == 2 and "no Modelfile" in result.stderr
    (tmp_path / "m.gguf").write_bytes(b"")
    result = run_script("serve.py", "--gguf", str(tmp_path / "m.gguf"), "--port", "70000")
    assert result.returncode == 2 and "--port 70000: must be 1 to 65535" in result.stderr


def test_a_missing_llama_server_is_named_with_the_way_to_build_it(monkeypatch, tmp_path):
    from ftkit.verify import llama_server

    monkeypatch.setenv("LLAMA_SERVER", str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="not an executable file"):
        llama_server.find_binary()
    monkeypatch.delenv("LLAMA_SERVER")
    monkeypatch.setattr(llama_server, "HOST_BUILDS", (tmp_path / "nothing",))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=re.escape("make llama-tools")):
        llama_server.find_binary()


def test_the_prompt_the_model_is_asked_is_the_training_prompt_with_bos_as_an_id(tokenizer_of):
    tokenizer = tokenizer_of("llama3")
    text, ids = deploy_parity.training_prompt(tokenizer, [{"role": "user", "content": "你好"}])
    assert not text.startswith("<|begin_of_text|>") and ids[0] == tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert prompts.render_text(prompts.from_alpaca({"instruction": "你好"}), tokenizer) == "<|begin_of_text|>" + text
