"""The one place each default of a run is written: the stages' flags, training's typed config, the Makefile's
settings (ftkit.config.settings) and the artifact paths all read it from here, so none can drift from another.

Standard library only, and no imports of ftkit's stages: `make` reads it on every invocation.
"""
from __future__ import annotations

# --- data ------------------------------------------------------------------------------------------
SEED = 42                      # the sample data's and the split's seed, training's initialisation and shuffling
NUM_SAMPLES = 240              # sample records (make sample)
SAMPLE_DIR = "data/sample"
DATA_DIR = "data/finetune"
DATA_NAME = "train"            # prefix of the prepared splits: train_train.jsonl, train_validation.jsonl, ...
VAL_RATIO = 0.1
TEST_RATIO = 0.1
MAX_LENGTH = 1024              # the longest example (prompt + answer, tokens), for the data stage and training
MIN_RECORDS = 100              # the checklist's minimum of training records
THINKING = "off"

# --- training --------------------------------------------------------------------------------------
TINY_MODEL = "models/tiny-llama"
MODEL_DIR = "models/finetuned"
ADAPTER_DIR = f"{MODEL_DIR}/lora_adapter"
EPOCHS = 3.0
BATCH_SIZE = 4
LEARNING_RATE = 2e-4
LORA_R = 8
LORA_ALPHA = 16
NUM_GPUS = 1
NUM_NODES = 1
NODE_RANK = 0
MAIN_PORT = 29500
DIST_TIMEOUT = 1800            # seconds a training process waits for its peers

# --- evaluation ------------------------------------------------------------------------------------
REPORT_DIR = "reports"
EVAL_OUTPUT = f"{REPORT_DIR}/evaluation_results.csv"
MAX_NEW_TOKENS = 128
EVAL_BATCH = 32                # prompts generated together (evaluation), prompts per forward pass (general check)
GENERAL_SHOTS = 0
GENERAL_FORMAT = "chat"
GENERAL_PER_SUBJECT = 0

# --- export and deployment -------------------------------------------------------------------------
MERGED_DIR = f"{MODEL_DIR}/merged_model"
GGUF_DIR = "models/gguf"
MODEL_NAME = "llama2-finetuned"
GGUF_TYPES = ("Q4_K_M",)
# layers llama.cpp offloads to the GPU in every check that loads a GGUF (-1: all; 0: CPU). No effect on a CPU
# build of llama.cpp, so -1 is safe everywhere
N_GPU_LAYERS = -1
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080

# --- report and acceptance -------------------------------------------------------------------------
REPORT = f"{REPORT_DIR}/training_report.md"
MIN_TOKENS_PER_SEC = 5.0
