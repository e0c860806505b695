# The benchmarks' targets, included by the Makefile: each figure beside its baseline, in the same command.

BENCH_RECORDS ?= 1000000
bench-eval: $(ADAPTER) | $(PY_DEP) ## benchmark batched vs one-by-one generation (tokens/s, identical outputs)
	$(RUN_PY) bench/bench_eval.py --base-model $(BASE_MODEL) --test-data $(TEST_FILE)
	$(RUN_PY) bench/bench_eval.py --base-model $(BASE_MODEL) --lora-model $(MODEL_DIR)/lora_adapter --test-data $(TEST_FILE)

bench-eval-general: $(TOKENIZER_DEP) | $(PY_DEP) ## benchmark the general check (one pass per question, batched) against one forward pass per option, one at a time
	$(RUN_PY) bench/bench_eval_general.py --base-model $(BASE_MODEL) --benchmark $(GENERAL_EVAL) --shots $(GENERAL_SHOTS) \
	  --format $(GENERAL_FORMAT) --batch-size $(EVAL_BATCH) $(FAMILY_FLAG)

# the model whose 152k-column output layer `make bench` measures (sparse against the full logits)
BENCH_LARGE_VOCAB_MODEL ?= models/tiny-qwen2.5
bench: $(GGUF_MAIN) $(if $(filter models/tiny-%,$(BENCH_LARGE_VOCAB_MODEL)),$(BENCH_LARGE_VOCAB_MODEL)/config.json) | $(PY_DEP) ## all benchmarks, each beside its baseline: reports/bench.json and a table
	$(RUN_PY) bench/bench_all.py --base-model $(BASE_MODEL) --model-dir $(MODEL_DIR) --gguf $(GGUF_MAIN) \
	  --test-data $(TEST_FILE) --train-data $(TRAIN_FILE) --val-data $(VAL_FILE) \
	  --large-vocab-model $(BENCH_LARGE_VOCAB_MODEL) --records $(BENCH_RECORDS) --n-gpu-layers $(N_GPU_LAYERS) \
	  --output $(REPORT_DIR)/bench.json

DRY_RUN ?=
gpu-check: | $(PY_DEP) ## prove and measure the GPU path on a random Qwen2.5-1.5B: sparse/dense output layer, padding-free, Liger, QLoRA (DRY_RUN=1: tiny, on the CPU)
	$(RUN_PY) bench/gpu_check.py $(if $(DRY_RUN),--dry-run) --output $(REPORT_DIR)/gpu_check.json

bench-gguf: $(GGUF_MAIN) | $(PY_DEP) ## benchmark GGUF decode (llama.cpp) against the merged HF model in fp32
	$(RUN_PY) bench/bench_gguf.py --merged-model $(MERGED_DIR) --gguf $(GGUF_MAIN) --n-gpu-layers $(N_GPU_LAYERS)

# the Llama-2 and the Qwen vocabulary (32k vs 152k): where the output layer matters; and a mixture of experts
BENCH_TRAIN_MODELS ?= models/tiny-llama models/tiny-qwen2.5 models/tiny-qwen3-moe
bench-train: $(foreach m,$(BENCH_TRAIN_MODELS),$(if $(filter models/tiny-%,$(m)),$(m)/config.json)) | $(PY_DEP) ## benchmark train_lora.py (sparse and dense output layer) against a plain TRL recipe, per model
	for model in $(BENCH_TRAIN_MODELS); do $(RUN_PY) bench/bench_train.py --base-model $$model || exit 1; done

BENCH_SCALE_MODELS ?= tinyllama-1.1b,qwen2.5-0.5b,llama3.2-1b
bench-scale: | $(PY_DEP) ## export at real scale: random TinyLlama-1.1B / Qwen2.5-0.5B / Llama-3.2-1B (131k context) shapes by Hub id through merge, GGUF, Q4_K_M, checks (time, peak RSS)
	$(RUN_PY) bench/bench_scale.py --models $(BENCH_SCALE_MODELS) --output $(REPORT_DIR)/bench_scale.json

bench-data: | $(PY_DEP) ## benchmark the data stage on BENCH_RECORDS generated records (records/s, memory)
	$(RUN_PY) bench/bench_data.py --records $(BENCH_RECORDS) --tokenizer $(BASE_MODEL)
