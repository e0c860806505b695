# syntax=docker/dockerfile:1
# The ftkit GPU image: `make image` (docker build -t ftkit:latest .), then `make all RUN=docker`.
# Build stage: CUDA devel toolchain, the pinned Python stack with CUDA torch and llama-cpp-python built
# with CUDA, and llama.cpp's tools built from the llama.cpp/ submodule. Runtime stage: CUDA runtime,
# the virtual environment and the tools only. Both install steps are the scripts `make setup` runs.
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ftkit
# the pins are the ones `make setup` installs; only torch's build differs: PyPI's Linux wheel of torch 2.13.0
# is the CUDA one, with CUDA runtime 13.0 (cuDNN 9.20, NCCL 2.29.7): the host needs NVIDIA driver >= 580.65.06
# (llama.cpp, built here with CUDA 12.8, needs less). The install script and `make gpu-check` check both.
COPY requirements.txt constraints.txt ./
# each long step copies only the script it runs: editing another docker/ file does not rebuild it
COPY docker/install_python_deps.sh docker/
# CUDA architectures: Ampere (80, 86), Ada (89), Hopper (90), Blackwell (100, 120; CUDA 12.8 builds them);
# override with --build-arg CUDA_ARCHS=... GGML_NATIVE=OFF: code for any x86-64 CPU, not only the build host's
# (a native build dies with SIGILL on an older CPU).
ARG CUDA_ARCHS="80;86;89;90;100;120"
RUN CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS} -DGGML_NATIVE=OFF" PYTHON=python3 \
    bash docker/install_python_deps.sh /opt/venv cuda
COPY docker/build_llama_cpp.sh docker/
COPY llama.cpp/ llama.cpp/
# no binary cache in the image: its layer is the cache
RUN CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS} -DGGML_NATIVE=OFF" LLAMA_TOOLS_CACHE=off \
    bash docker/build_llama_cpp.sh cuda llama.cpp /opt/llama.cpp/bin

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION}
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 make git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Ubuntu 24.04 images already have the user `ubuntu` at uid 1000: it goes, so ftkit can have that uid
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && useradd --create-home --uid 1000 ftkit \
 && mkdir -p /cache/huggingface /workspace \
 && chown -R ftkit:ftkit /cache /workspace
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/llama.cpp/bin /opt/llama.cpp/bin
WORKDIR /workspace
COPY --chown=ftkit:ftkit . /workspace
ENV PATH=/opt/venv/bin:/opt/llama.cpp/bin:$PATH \
    VENV=/opt/venv PYTHON=/opt/venv/bin/python PYTHONPATH=/workspace \
    HF_HOME=/cache/huggingface
USER 1000:1000
# `make ... RUN=docker` mounts the checkout (code, configs, data, models, reports) at its own path and runs there;
# the Hugging Face cache is a volume
VOLUME ["/cache/huggingface"]
ENTRYPOINT ["/workspace/docker/entrypoint.sh"]
CMD ["make", "help"]
