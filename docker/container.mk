# ftkit's container wiring, included by the Makefile: where the stages run (RUN=docker|local), the docker run
# that runs them in the CUDA image, and the image's own targets.

# --- where the stages run ------------------------------------------------------------------------
# RUN=docker runs every stage script in the CUDA image (make image); RUN=local in .venv. Default:
# docker when the image exists, else local.
IMAGE       ?= ftkit:latest
RUN         ?= $(shell docker image inspect $(IMAGE) >/dev/null 2>&1 && echo docker || echo local)
HF_CACHE    ?= $(HOME)/.cache/huggingface
CUDA_ARCHS  ?= 80;86;89;90;100;120
# The container sees this checkout at its own path, and runs there: the code, configs and data you edit are what
# runs (PYTHONPATH names it: the image holds the toolchain; its copy of the code is for `docker run` by hand). Each path a stage reads
# or writes outside the checkout is mounted at its own path too (inputs read-only); the output folders are made
# first, as you (Docker would make them as root).
# --ipc=host: NCCL between GPUs needs more shared memory than Docker's 64 MB default
outside = $(foreach p,$(abspath $(1)),$(if $(filter $(CURDIR)/%,$(p)),,$(p)))
DOCKER_INPUTS  = $(call outside,$(foreach f,$(RAW_DATA) $(TRAIN_CONFIG) $(ACCELERATE_CONFIG) $(BASE_MODEL) $(TINY_MODEL) \
  $(GENERAL_EVAL),$(wildcard $(f))))
DOCKER_OUTPUTS = $(call outside,$(SAMPLE_DIR) $(DATA_DIR) $(MODEL_DIR) $(MERGED_DIR) $(GGUF_DIR) $(REPORT_DIR) \
  $(dir $(EVAL_OUTPUT)))
DOCKER_MOUNTS  = $(sort $(DOCKER_OUTPUTS))
docker_checked = $(if $(findstring :,$(1)),$(error RUN=docker: $(1) has a ':' and cannot be mounted into the container: \
  move it, or run with RUN=local),$(1))
# --network host on several hosts: node 0 listens on MAIN_PORT, and the processes exchange gradients host to host
DOCKER_RUN   = $(if $(DOCKER_MOUNTS),mkdir -p $(DOCKER_MOUNTS) && )docker run --rm --gpus all --ipc=host \
  $(if $(filter-out 1,$(NUM_NODES)),--network host) \
  --user $$(id -u):$$(id -g) -e HOME=/tmp -e HF_TOKEN -e PYTHONPATH=$(CURDIR) -v $(call docker_checked,$(CURDIR)):$(CURDIR) -w $(CURDIR) \
  $(foreach p,$(sort $(DOCKER_INPUTS)),-v $(call docker_checked,$(p)):$(p):ro) \
  $(foreach p,$(DOCKER_MOUNTS),-v $(call docker_checked,$(p)):$(p)) -v $(HF_CACHE):/cache/huggingface
ifeq ($(RUN),docker)
  # the cache folder is made first, as you: Docker would create a missing one as root, unwritable for --user
  RUN_PY = mkdir -p $(HF_CACHE) && $(DOCKER_RUN) $(IMAGE) python
  PY_DEP :=
else
  RUN_PY := $(PYTHON)
  PY_DEP := $(PYTHON)
endif
# llama.cpp's llama-server (the engine Ollama >= 0.30 runs): the deployment check and `make serve` use it.
# Built from the submodule on first use (make llama-tools); in the container it is on PATH. LLAMA_SERVER=path
# names another build.
LLAMA_SERVER_BUILD := build/llama.cpp-$(FLAVOUR)/bin/llama-server
LLAMA_SERVER ?= $(CURDIR)/$(LLAMA_SERVER_BUILD)
export LLAMA_SERVER
# the build is a prerequisite only when it is the one used (not in the container, not another LLAMA_SERVER)
LLAMA_SERVER_DEP := $(if $(filter docker,$(RUN)),,$(if $(filter $(CURDIR)/$(LLAMA_SERVER_BUILD),$(LLAMA_SERVER)),$(LLAMA_SERVER_BUILD)))
ifeq ($(MAKELEVEL),0)
  $(info ftkit: stages run $(if $(filter docker,$(RUN)),in the container $(IMAGE),locally in $(VENV)) (RUN=$(RUN); RUN=docker|local to choose))
endif

# the fine-tuned GGUF behind llama-server's OpenAI-compatible API, until Ctrl-C (in the container: published
# on SERVE_HOST:SERVE_PORT of this machine)
SERVE_GGUF ?=
ifeq ($(RUN),docker)
  SERVE_PY = mkdir -p $(HF_CACHE) && $(subst docker run --rm,docker run --rm --init -p $(SERVE_HOST):$(SERVE_PORT):$(SERVE_PORT),$(DOCKER_RUN)) \
    $(IMAGE) python scripts/serve.py --host 0.0.0.0
else
  SERVE_PY = $(PYTHON) scripts/serve.py --host $(SERVE_HOST)
endif

image: llama.cpp ## build the CUDA image (Dockerfile): pinned toolchain, llama.cpp built with CUDA
	docker build -t $(IMAGE) --build-arg CUDA_ARCHS="$(CUDA_ARCHS)" .

shell: ## open a shell in the container, with data/, models/ and reports/ mounted
	$(subst docker run --rm,docker run --rm -it,$(DOCKER_RUN)) $(IMAGE) bash
