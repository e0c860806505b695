# ftkit: Chinese Q&A data -> LoRA fine-tuned Llama chat model -> Ollama.
# This file wires the stages' files together. The settings (EPOCHS, BASE_MODEL, ...) are resolved in Python, once
# per make (ftkit/config/settings.py: each one's default, help and where its value came from); `make settings` lists
# them all, `make help` the targets. Any of them can be given on the command line: `make train EPOCHS=1`.

SHELL := /bin/bash
.DEFAULT_GOAL := help
# grouped targets (the data stage writes three files in one run) need GNU make 4.3 or newer
ifeq ($(filter grouped-target,$(.FEATURES)),)
  $(error ftkit needs GNU make 4.3 or newer; this is $(MAKE_VERSION). On macOS: brew install make, then run gmake)
endif
# a stage that fails leaves no half-written target behind for the next make to trust
.DELETE_ON_ERROR:

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

# --- where the stages run: locally in .venv, or in the CUDA image (docker/container.mk) ----------------------
include docker/container.mk

# --- the settings: resolved once, in Python ---------------------------------------------------------------
# A setting you give on the command line is recorded in .ftkit/settings.mk and used by every later make until you
# give another (`make eval` after `make train EPOCHS=1` evaluates that run). A preset applies only to what you never
# set. Dry runs (make -n, -q, -t), sub-makes and the targets that build nothing record nothing. ftkit.config.make
# prints every setting as `NAME := value`, each stage's command and its stamp (a stage re-runs, with every later
# one, when a setting that shapes its output changes); this make includes that.
shell_quote = '$(subst ','"'"',$(1))'
MAKE_DRY := $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))$(findstring t,$(firstword -$(MAKEFLAGS)))
CONFIG_PY := $(if $(wildcard $(PYTHON)),$(PYTHON),python3)
COMMAND_LINE := $(foreach v,$(filter-out COLUMNS,$(.VARIABLES)),$(if $(filter command line,$(origin $(v))),$(call \
  shell_quote,$(v)=$(value $(v)))))
# COLUMNS is also the terminal's width, which shells and test runners export: only the command line's is a mapping
COMMAND_LINE += $(if $(filter command line,$(origin COLUMNS)),$(call shell_quote,COLUMNS=$(value COLUMNS)))
RESOLVED := $(shell mktemp)
$(shell $(if $(filter docker,$(RUN)),HF_HOME=$(HF_CACHE) )$(CONFIG_PY) -m ftkit.config.make --goals $(call shell_quote,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))) --dry \
  '$(MAKE_DRY)' --level $(MAKELEVEL) -- $(COMMAND_LINE) > $(RESOLVED))
-include $(RESOLVED)
$(shell rm -f $(RESOLVED))

.PHONY: settings settings-reset help setup lock llama.cpp tiny-model sample data train eval eval-general bench-eval-general chat merge gguf gguf-adapter ollama serve report acceptance all gpu-check bench bench-gguf bench-data bench-train bench-eval bench-scale demo test test-fast docs lint image shell llama-tools clean

help: ## list the targets
	@echo "ftkit — make TARGET [VAR=value ...]"
	@grep -hE '^[a-zA-Z_.-]+:.*## ' $(filter Makefile %.mk,$(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "main settings (any can be set: make train EPOCHS=1; RUN=$(RUN) FLAVOUR=$(FLAVOUR)):"
	@$(CONFIG_PY) -m ftkit.config.make --help-lines -- $(COMMAND_LINE)
	@echo "settings you give are remembered in .ftkit/settings.mk: make settings shows where each value comes from"

# a stage whose settings changed, in a make that writes no stamp (ftkit/config/make.py: stamp)
.PHONY: settings-changed
settings-changed: ;

settings: ## show every setting, its value and where it comes from (command line, recorded, preset, default)
	@$(CONFIG_PY) -m ftkit.config.make --show -- $(COMMAND_LINE)

settings-reset: ## forget the recorded settings (every value goes back to its preset or default)
	@rm -f .ftkit/settings.mk && echo "ftkit: forgot the recorded settings (.ftkit/settings.mk)"

setup: ## create .venv with the pinned stack, install this checkout (editable: the ftkit command), populate llama.cpp/
	@bash docker/install_python_deps.sh $(VENV) $(FLAVOUR)
	@PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash docker/fetch_llama_cpp.sh

llama.cpp: ## populate the llama.cpp/ submodule at its pinned commit (offline, from the package registry)
	@PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash docker/fetch_llama_cpp.sh

# the code each stage runs (ftkit/: core below the stages, verify between): a change re-runs the stage and what follows
RENDERER := ftkit/core/prompts.py $(wildcard ftkit/core/families/*.py)
TINY_SOURCES := $(wildcard ftkit/tiny/*.py) $(RENDERER) ftkit/stages/data/sample_data.py ftkit/assets/tokenizer_corpus.txt
DATA_SOURCES := ftkit/stages/data/prepare.py ftkit/core/readers.py $(RENDERER)
TRAIN_SOURCES := $(wildcard ftkit/stages/train/*.py) $(RENDERER)
EVAL_SOURCES := ftkit/stages/evaluate/evaluation.py ftkit/verify/task.py ftkit/verify/metrics.py ftkit/core/inference.py
MERGE_SOURCES := ftkit/stages/export/merge.py ftkit/verify/equality.py
# the export, its checks and the deployment check (every Ollama path, llama-server) are one stage
EXPORT_SOURCES := ftkit/stages/export/gguf.py ftkit/core/ollama.py $(RENDERER) $(wildcard ftkit/verify/*.py) \
  tests/go/ollama_chat.go

$(TINY_MODEL)/config.json: $(TINY_SOURCES) | $(PY_DEP)
	$(RUN_PY) scripts/build_tiny_model.py $(if $(filter models/tiny-%,$(TINY_MODEL)),--tiny $(patsubst models/tiny-%,%,$(TINY_MODEL)),--family $(or $(FAMILY),llama2)) --output-dir $(TINY_MODEL)

# every tiny model by its folder name, models/tiny-<name>, as the family files name them
models/tiny-%/config.json: $(TINY_SOURCES) | $(PY_DEP)
	$(RUN_PY) scripts/build_tiny_model.py --tiny $* --output-dir $(@D)

tiny-model: $(TINY_MODEL)/config.json ## build an embedded tiny model under models/ (FAMILY=..., or TINY_MODEL=models/tiny-qwen3-moe)

$(SAMPLE_DIR)/sample_data.json: ftkit/stages/data/sample_data.py ftkit/commands/create_sample_data.py $(STAMP_SAMPLE) | $(PY_DEP)
	$(RUN_PY) $(SAMPLE_CMD)

sample: $(SAMPLE_DIR)/sample_data.json ## create sample Chinese Q&A data (alpaca JSON)

# the tokenizer that measures token lengths is the base model's; the tiny one is built on demand
TOKENIZER_DEP := $(if $(filter $(TINY_MODEL),$(BASE_MODEL)),$(TINY_MODEL)/config.json)

# one run writes the three splits (a grouped target)
DATA_SPLITS := $(foreach split,train validation test,$(DATA_DIR)/$(DATA_NAME)_$(split).jsonl)

$(DATA_SPLITS) &: $(RAW_DATA) $(DATA_SOURCES) $(TOKENIZER_DEP) $(STAMP_DATA) | $(PY_DEP)
	$(RUN_PY) $(DATA_CMD) --min-records $(MIN_RECORDS)

data: $(DATA_SPLITS) ## validate, dedup and split RAW_DATA into train/validation/test JSONL

ADAPTER := $(MODEL_DIR)/lora_adapter/adapter_config.json

# TRAIN_LAUNCH_ARGS: this host's `accelerate launch` (ftkit/config/launch.py), checked when the recipe runs
$(ADAPTER): $(TRAIN_FILE) $(TRAIN_SOURCES) $(TRAIN_CONFIG) $(TOKENIZER_DEP) $(STAMP_TRAIN) | $(PY_DEP)
	$(if $(TRAIN_LAUNCH_ERROR),$(error $(TRAIN_LAUNCH_ERROR)))$(RUN_PY)$(if $(TRAIN_LAUNCH_ARGS), \
	  $(TRAIN_LAUNCH_ARGS)) scripts/train_lora.py $(TRAIN_FLAGS)$(if $(TRAIN_LAUNCH_ARGS), --dist-timeout \
	  $(DIST_TIMEOUT))$(if $(ALLOW_CPU), --allow-cpu)

train: $(ADAPTER) ## LoRA fine-tune BASE_MODEL on the prepared data (EPOCHS= LR= QLORA=1 NUM_GPUS=...)

# the general check (make eval-general, after the export: every GGUF type too)
GENERAL_SOURCES = ftkit/stages/evaluate/general_eval.py ftkit/core/inference.py $(wildcard $(GENERAL_EVAL)/*.csv \
  $(GENERAL_EVAL)/*/*.csv $(GENERAL_EVAL)/subject_mapping.json)

# EVAL_GENERAL_STEP: the general check of `make eval` when you gave GENERAL_EVAL; HF models only, so its file is dated
# 2000 and `make eval-general` still adds the GGUF types
$(EVAL_OUTPUT).summary.json: $(ADAPTER) $(TEST_FILE) $(EVAL_SOURCES) $(if $(EVAL_GENERAL_STEP),$(GENERAL_SOURCES)) \
		$(STAMP_EVAL) | $(PY_DEP)
	$(RUN_PY) $(EVAL_CMD)
	$(if $(EVAL_GENERAL_STEP),$(RUN_PY) $(GENERAL_CMD) && touch -t 200001010000 $(GENERAL_JSON))

eval: $(EVAL_OUTPUT).summary.json ## base vs fine-tuned on the test split: CSV, summary with CI, chart (RATINGS=sheet to import)
	$(if $(RATINGS),$(RUN_PY) scripts/evaluate_model.py --output $(EVAL_OUTPUT) --import-ratings $(RATINGS))

chat: $(ADAPTER) | $(PY_DEP) ## talk to base and fine-tuned side by side (/reset /system /both /quit)
	$(RUN_PY) scripts/evaluate_model.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter --interactive $(FAMILY_FLAG)

$(MERGED_DIR)/config.json: $(ADAPTER) $(MERGE_SOURCES) $(STAMP_MERGE) | $(PY_DEP)
	$(RUN_PY) $(MERGE_CMD)

merge: $(MERGED_DIR)/config.json ## merge the adapter into the base (16/32-bit) and check logits/greedy equality

MODELFILE := $(GGUF_DIR)/Modelfile

# GGUF_MAIN is the file the Modelfile points at (the first non-F16 type asked for: a new type re-runs the stage).
# The Modelfile's own settings (SYSTEM_PROMPT, OLLAMA_VERSION) re-render the Modelfile alone; N_GPU_LAYERS shapes no file

$(GGUF_MAIN): $(MERGED_DIR)/config.json $(EXPORT_SOURCES) $(STAMP_GGUF) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) $(GGUF_CMD) $(MODELFILE_FLAGS) --n-gpu-layers $(N_GPU_LAYERS)

# the export writes the Modelfile too; this re-renders (and re-proves) it alone when only its settings changed
$(MODELFILE): $(GGUF_MAIN) $(STAMP_MODELFILE) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) $(GGUF_CMD) $(MODELFILE_FLAGS) --modelfile-only --n-gpu-layers $(N_GPU_LAYERS)

ADAPTER_GGUF := $(GGUF_DIR)/$(MODEL_NAME)-lora-F16.gguf
$(ADAPTER_GGUF): $(ADAPTER) $(GGUF_MAIN) ftkit/stages/export/adapter_export.py $(STAMP_MODELFILE) | $(PY_DEP) $(LLAMA_SERVER_DEP)
	$(RUN_PY) $(ADAPTER_CMD)

gguf-adapter: $(ADAPTER_GGUF) ## the LoRA adapter alone as a GGUF on a base GGUF, verified, with Modelfile.adapter (Ollama ADAPTER)

$(GENERAL_JSON): $(ADAPTER) $(GGUF_MAIN) $(GENERAL_SOURCES) $(STAMP_GENERAL) | $(PY_DEP)
	$(RUN_PY) $(GENERAL_CMD) --quant-report $(GGUF_DIR)/quant_report.json --n-gpu-layers $(N_GPU_LAYERS)

eval-general: $(GENERAL_JSON) ## general ability: multiple-choice accuracy of base, fine-tuned and each GGUF type (GENERAL_EVAL=C-Eval/CMMLU folder)

gguf: $(GGUF_MAIN) $(MODELFILE) ## convert to GGUF with llama.cpp, quantize (GGUF_TYPES="Q4_K_M Q8_0"), verify, write the Modelfile, prove every chat path (OLLAMA_VERSION=)

# always on this machine, where Ollama is (never in the container); a light script, any python3 runs it
HOST_PY = $(if $(wildcard $(PYTHON)),$(PYTHON),PYTHONPATH=$(CURDIR) python3)
ollama: $(MODELFILE) ## ollama create + smoke test, on this machine (prints the commands when ollama is absent)
	$(HOST_PY) scripts/ollama_create.py --model-name $(MODEL_NAME) --modelfile $(MODELFILE)

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

# the benchmarks and the GPU check (bench/bench.mk)
include bench/bench.mk

demo: setup ## set up, then the whole pipeline on a tiny model (FAMILY=qwen2.5 ...) and the sample data, ending in the acceptance table
	@echo "demo: embedded tiny random $(or $(FAMILY),llama2) model + 240 sample records, preset configs/tiny-cpu.yaml (high learning rate for a random model)"
	$(MAKE) --no-print-directory all BASE_MODEL=$(TINY_MODEL) RAW_DATA=$(SAMPLE_DIR)/sample_data.json

test: setup $(LLAMA_SERVER_DEP) ## set up (llama-server included), then run the whole test suite (slow end-to-end tests included) on TEST_WORKERS workers
	$(PYTHON) -m pytest $(TEST_PARALLEL) $(PYTEST_ARGS)

test-fast: ## run the tests not marked slow (needs `make setup` first; TEST_WORKERS=)
	$(PYTHON) -m pytest -m "not slow" $(TEST_PARALLEL) $(PYTEST_ARGS)

docs: | $(PY_DEP) ## regenerate scripts/README.md from the scripts' --help, and the tables of measured figures in docs/
	$(PYTHON) tools/write_scripts_readme.py

lint: ## ruff over the package, scripts, benchmarks, tools and tests
	$(PYTHON) -m ruff check ftkit scripts bench tools tests

$(PYTHON):
	@bash docker/install_python_deps.sh $(VENV) $(FLAVOUR)

lock: ## re-pin constraints.txt to what .venv holds now (after changing requirements.txt)
	@{ sed -n '1,2p' constraints.txt; $(PYTHON) -m pip freeze --all --exclude-editable \
	  | grep -v -i -E '^(torch|pip|setuptools|wheel)==' | sort -f; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	@echo "constraints.txt: $$(grep -c '==' constraints.txt) pins"

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
