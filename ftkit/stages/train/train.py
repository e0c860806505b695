"""Training stage: LoRA / QLoRA fine-tuning with TRL's SFTTrainer and PEFT.

The data arrive as token ids from the one renderer (ftkit.core.prompts): labels are -100 on the prompt,
so the loss covers the answer and its EOS only. Everything a later stage or a person needs is
written under the output folder; the adapter appears there only once it is complete.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config.schema import option
from ftkit.core import families, prompts
from ftkit.core.artifacts import adapter_digest
from ftkit.core.cli import UserError
from ftkit.core.io import atomic_dir, write_json_atomic
from ftkit.core.loading import (
    conversation_of,
    load_tokenizer,
    pickle_hint,
    read_jsonl,
    save_tokenizer,
    torch_dtype,
)
from ftkit.stages.train import distributed, output_layer

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
EVAL_STRATEGIES = ("epoch", "steps", "no")


@dataclass
class TrainConfig:
    base_model: str = option(defaults.TINY_MODEL, "base model: a local folder or a Hub id")
    train_data: str = option(f"{defaults.DATA_DIR}/{defaults.DATA_NAME}_train.jsonl", "training split from prepare_data.py")
    val_data: str | None = option(f"{defaults.DATA_DIR}/{defaults.DATA_NAME}_validation.jsonl", "validation split ('none' to skip)")
    output_dir: str = option(defaults.MODEL_DIR, "where the adapter, checkpoints, logs and metrics go")
    epochs: float = option(defaults.EPOCHS, "passes over the training data")
    batch_size: int = option(defaults.BATCH_SIZE, "examples per device per step; with --grad-accum sets the effective batch")
    learning_rate: float = option(defaults.LEARNING_RATE, "peak learning rate (LoRA tolerates ~10x full fine-tuning's)")
    lora_r: int = option(defaults.LORA_R, "LoRA rank: higher adapts more, costs more memory")
    lora_alpha: int = option(defaults.LORA_ALPHA, "LoRA scaling numerator (effective scale alpha/r)")
    lora_dropout: float = option(0.05, "dropout on the LoRA branch")
    target_modules: str = option("all-linear", "comma-separated module names to adapt, or all-linear")
    max_length: int = option(defaults.MAX_LENGTH, "longest prompt+answer in tokens; longer examples are dropped, never cut")
    grad_accum: int = option(1, "gradient accumulation steps")
    warmup_ratio: float = option(0.03, "share of steps spent warming the learning rate up")
    lr_scheduler: str = option("cosine", "learning-rate schedule (linear, cosine, constant, ...)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    seed: int = option(defaults.SEED, "random seed for initialisation and shuffling")
    eval_strategy: str = option("epoch", "when to evaluate", choices=EVAL_STRATEGIES)
    eval_steps: int | None = option(None, "evaluate every N steps (with --eval-strategy steps)")
    save_steps: int | None = option(None, "checkpoint every N steps (default: when evaluating, else each epoch)")
    early_stopping_patience: int | None = option(None, "stop after N evaluations without a better eval loss")
    resume: str | None = option(None, "resume from the latest checkpoint ('latest') or a checkpoint folder",
                                nargs="?", const="latest")
    gradient_checkpointing: bool = option(False, "recompute activations to save memory (non-reentrant)")
    use_quantization: bool = option(False, "QLoRA: load the base in 4-bit NF4 (bitsandbytes) with double quantization")
    precision: str = option("auto", "bf16 where supported, else fp32 (fp16 is never chosen for you)", choices=PRECISIONS)
    group_by_length: bool = option(True, "batch examples of similar length (less padding, faster)")
    packing: bool = option(False, "pack examples into max_length blocks (GPU + flash attention only)")
    padding_free: bool = option(False, "padding-free batches: each batch one row, sequences kept apart by their "
                                       "position ids (off by default: slower on the CPU, measured in docs/train.md)")
    liger_kernel: bool = option(False, "Liger's Triton kernels for RMSNorm, RoPE and SwiGLU (CUDA; pip install "
                                       "liger-kernel)")
    sparse_logits: bool = option(True, "compute the output layer only at supervised positions (--no-sparse-logits: "
                                       "the full logits at every position, as transformers' own loss does; for "
                                       "comparison)")
    logging_steps: int = option(1, "log loss every N steps")
    max_steps: int = option(-1, "stop after N optimizer steps (overrides --epochs when > 0)")
    trust_remote_code: bool = option(False, "allow the model repository's own Python code to run")
    allow_pickle: bool = option(False, "load weights from pickle files (*.bin) when there are no safetensors")
    family: str | None = option(None, f"chat format family ({', '.join(families.FAMILIES)}; default: detected "
                                      "from the model's chat template)", choices=families.NAMES)
    thinking: str = option(defaults.THINKING, f"thinking mode, for a family that thinks ({', '.join(families.THINKERS)}): "
                                  "off trains answers only; on: every answer after its think block (empty without a "
                                  "trace); mixed: records with a trace think, the others answer directly",
                           choices=families.THINKING_MODES)
    allow_cpu: bool = option(False, "train a model over 1 B parameters without a GPU anyway (refused by default: "
                                    "at this CPU's measured speed it takes days)")
    dist_timeout: int = option(defaults.DIST_TIMEOUT, "under accelerate launch: seconds a process waits for the others (to join, at "
                                     "every exchange) before it stops with an error instead of hanging")

    def __post_init__(self):
        if isinstance(self.val_data, str) and self.val_data.lower() in ("", "none"):
            self.val_data = None
        for name in ("batch_size", "lora_r", "lora_alpha", "max_length", "grad_accum", "logging_steps", "dist_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("--warmup-ratio must be in [0, 1)")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ValueError("--learning-rate and --epochs must be positive")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ValueError("--eval-strategy steps needs --eval-steps")
        if self.val_data is None:
            self.eval_strategy = "no"
        if self.early_stopping_patience and self.eval_strategy == "no":
            raise ValueError("--early-stopping-patience needs validation data and an --eval-strategy")
        if self.early_stopping_patience and self.save_steps and (
                self.eval_strategy != "steps" or self.save_steps % (self.eval_steps or 1)):
            raise ValueError("--early-stopping-patience keeps the best checkpoint, so --save-steps must be a multiple "
                             "of --eval-steps with --eval-strategy steps (or leave --save-steps out)")


# --- data ----------------------------------------------------------------------------------------

@dataclass
class Encoded:
    rows: list[dict]          # {"input_ids", "labels"}
    dropped_too_long: int
    supervised_tokens: int
    with_reasoning: int = 0   # examples whose answer carries a reasoning trace (trained only in a thinking run)


def encode_split(path: str, tokenizer, max_length: int) -> Encoded:
    """Token ids from the one renderer, labels -100 on the prompt. An example whose answer would be cut
    by max_length is dropped and counted: truncating it would train on a reply that never ends."""
    rows, dropped, supervised, reasoning = [], 0, 0, 0
    for i, record in enumerate(read_jsonl(path)):
        try:
            conv = conversation_of(record)
            ids = prompts.render_ids(conv, tokenizer)
        except (prompts.PromptError, KeyError) as err:
            raise UserError(f"{path}: record {i + 1}: {err}") from None
        if not ids.answer_ids:
            raise UserError(f"{path}: record {i + 1} has no answer to train on")
        if len(ids.input_ids) > max_length:
            dropped += 1
            continue
        rows.append({"input_ids": ids.input_ids, "labels": [-100] * len(ids.prompt_ids) + ids.answer_ids})
        supervised += len(ids.answer_ids)
        reasoning += conv.turns[-1].reasoning is not None
    if dropped:
        log.warning("%s: dropped %d example(s) longer than --max-length %d", path, dropped, max_length)
    if not rows:
        raise UserError(f"{path}: no example fits in --max-length {max_length}")
    return Encoded(rows, dropped, supervised, reasoning)


def check_reasoning(train: Encoded, family: families.Family, path: str) -> None:
    """Say what the thinking mode does with this data: a thinking run without one trace teaches no thinking."""
    if family.thinking == "off":
        if train.with_reasoning:
            log.warning("train: %d example(s) in %s carry a reasoning trace, which THINKING=off does not train "
                        "(THINKING=mixed does, for a family that thinks)", train.with_reasoning, path)
        return
    log.info("train: THINKING=%s: %d of %d examples think", family.thinking,
             len(train.rows) if family.thinking == "on" else train.with_reasoning, len(train.rows))
    if not train.with_reasoning:
        log.warning("train: THINKING=%s but no example in %s has a reasoning trace: prepare the data with the same "
                    "THINKING (make data THINKING=%s), or the model learns only empty think blocks",
                    family.thinking, path, family.thinking)


# --- a CPU guard ---------------------------------------------------------------------------------
CPU_GUARD_PARAMETERS = 1e9


def cpu_flops(seconds: float = 0.3) -> float:
    """This CPU's fp32 matrix-multiply rate (FLOP/s), measured now: the ceiling of training on it."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)  # warm-up
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        torch.mm(a, b)
        runs += 1
    return runs * 2 * 1024**3 / elapsed


def check_cpu_training(config: TrainConfig, tokens: int) -> None:
    """Stop before loading a model over 1 B parameters when there is no GPU: it would run for days without a
    word. The estimate: training costs about 6 FLOPs per parameter per token (forward and backward), at the
    matrix-multiply rate measured on this CPU, which real training does not reach — a lower bound."""
    import torch

    from ftkit.config.presets import parameters_of

    if config.allow_cpu or torch.cuda.is_available():
        return
    params, source = parameters_of(config.base_model)
    if not params or params <= CPU_GUARD_PARAMETERS:
        return
    rate = cpu_flops() / (6 * params)
    total = tokens * config.epochs
    hours = total / rate / 3600
    raise UserError(f"{config.base_model}: about {params / 1e9:.1f} B parameters (from {source}) and no GPU here: "
                    f"{config.epochs:g} epoch(s) of {tokens} tokens at most {rate:.1f} tokens/s on this CPU (measured) "
                    f"is at least {hours:.1f} hours. Train on a GPU host (FLAVOUR=cuda, or RUN=docker), or go on anyway "
                    "with ALLOW_CPU=1 (--allow-cpu)")


# --- model ---------------------------------------------------------------------------------------

def choose_precision(requested: str) -> str:
    import torch

    if requested != "auto":
        if requested in ("bf16", "fp16") and not torch.cuda.is_available():
            raise UserError(f"--precision {requested} needs a CUDA GPU; this machine has none (use fp32)")
        return requested
    # bf16 on CPU measured 1.5x slower than fp32 here; fp16 overflows in Llama-2 activations
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def check_4bit_possible() -> None:
    """Stop before loading anything when bitsandbytes cannot run 4-bit here."""
    try:
        import bitsandbytes  # noqa: F401
        from bitsandbytes.nn import Linear4bit  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure means no 4-bit
        raise UserError(f"--use-quantization needs bitsandbytes, which cannot load here ({err}); "
                        "train without it, or on a CUDA GPU") from None


def check_liger_possible() -> None:
    import importlib.util

    import torch

    if importlib.util.find_spec("liger_kernel") is None or not torch.cuda.is_available():
        raise UserError("--liger-kernel needs a CUDA GPU and `pip install liger-kernel`; train without it here")


def sharding() -> str | None:
    """'fsdp' or 'deepspeed' when `accelerate launch` shards the model, else None (one process, or DDP)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true"):
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true"):
        return "deepspeed"
    return None


def load_kwargs(config: TrainConfig, precision: str) -> dict:
    """from_pretrained's arguments for this run: dtype, 4-bit settings and device placement."""
    import torch
    from transformers import BitsAndBytesConfig

    dtype = torch_dtype(precision)
    kwargs = {"dtype": dtype, "trust_remote_code": config.trust_remote_code, "use_safetensors": not config.allow_pickle}
    if config.use_quantization:
        quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                 "bnb_4bit_compute_dtype": dtype}
        if sharding() == "fsdp":  # FSDP shards only floating-point storage: pack the 4-bit weights into it
            quant["bnb_4bit_quant_storage"] = dtype
        kwargs["quantization_config"] = BitsAndBytesConfig(**quant)
    if os.environ.get("LOCAL_RANK") is not None and torch.cuda.is_available() and sharding() is None:
        # DDP: each rank holds the whole model on its own GPU. FSDP and ZeRO-3 place (and shard) it themselves.
        kwargs["device_map"] = {"": int(os.environ["LOCAL_RANK"])}
    return kwargs


def load_model(config: TrainConfig, precision: str):
    """The base model. Under DeepSpeed ZeRO-3 the trainer's arguments must exist first: they open the
    ZeRO-3 context in which from_pretrained partitions the weights as it loads them (else every rank
    would load the whole model)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(config.base_model, **load_kwargs(config, precision))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the base model {config.base_model} ({str(err).splitlines()[0]})"
                        f"{pickle_hint(config.base_model)}") from None
    if config.use_quantization:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        keep_4bit_gradients_on_cpu(model)
    return model


def keep_4bit_gradients_on_cpu(model) -> int:
    """bitsandbytes 0.50 repacks 4-bit weights for an AVX-512-bf16 kernel on the first no-grad forward
    (an evaluation); afterwards gradients through those layers are silently zero. Keep the portable
    kernel. Returns how many layers were switched."""
    from bitsandbytes.nn import Linear4bit

    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def full_logits_trainer(trainer_class):
    """`trainer_class` with the model's own loss: the logits at every position, then torch's cross-entropy,
    as transformers (and LLaMA-Factory) compute it. The baseline `--no-sparse-logits` measures the sparse
    output layer against; TRL's token entropy and accuracy are not logged on this path."""
    from transformers import Trainer

    class FullLogits(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            if self.aux_loss_enabled:
                inputs["output_router_logits"] = True
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    FullLogits.__name__ = f"FullLogits{trainer_class.__name__}"
    return FullLogits


def has_fused_experts(model) -> bool:
    """A mixture of experts as transformers 5 lays it out: each layer's experts in one 3-D weight tensor, which
    PEFT's all-linear adapts (ParamWrapper) along with the router."""
    return any(p.dim() == 3 for name, p in model.named_parameters() if ".experts." in name)


def lora_dropout(config: TrainConfig, model) -> float:
    """The LoRA dropout the run can use: PEFT adapts fused expert weights only without dropout, so a mixture of
    experts trains with none (said once, and recorded in the run manifest)."""
    if config.lora_dropout and has_fused_experts(model):
        log.warning("train: LoRA dropout %s -> 0: PEFT adapts a mixture of experts' expert weights and router only "
                    "without dropout (set LORA_DROPOUT=0 to say so)", config.lora_dropout)
        return 0.0
    return config.lora_dropout


def lora_config(config: TrainConfig, dropout: float):
    from peft import LoraConfig

    targets = config.target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


# --- the trainer ---------------------------------------------------------------------------------

def sft_config(config: TrainConfig, checkpoints: Path, precision: str):
    import torch
    from trl import SFTConfig

    evaluating = config.eval_strategy != "no"
    save_strategy = "steps" if config.save_steps else (config.eval_strategy if evaluating else "epoch")
    save_steps = config.save_steps or config.eval_steps or 500
    return SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy=config.eval_strategy,
        eval_steps=config.eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps,
        load_best_model_at_end=bool(config.early_stopping_patience) and evaluating,
        metric_for_best_model="eval_loss" if evaluating else None,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to=["tensorboard"],
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},  # reentrant checkpointing starves LoRA of grads
        # examples over max_length were dropped already; TRL refuses a max_length it cannot enforce padding-free
        max_length=None if config.padding_free and not config.packing else config.max_length,
        packing=config.packing,
        padding_free=config.padding_free,
        use_liger_kernel=config.liger_kernel,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,
        ddp_timeout=config.dist_timeout,  # the process group's: a lost peer ends the run instead of hanging it
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=False,
    )


def find_checkpoint(checkpoints: Path, resume: str | None) -> str | None:
    if not resume:
        return None
    if resume != "latest":
        if not Path(resume, "trainer_state.json").exists():
            raise UserError(f"--resume {resume}: not a checkpoint folder (no trainer_state.json)")
        return resume
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    found = [p for p in found if (p / "trainer_state.json").exists()]  # a checkpoint cut short has none
    if not found:
        log.warning("--resume: no checkpoint under %s yet; starting from the beginning", checkpoints)
        return None
    return str(found[-1])


def run_training(config: TrainConfig) -> dict:
    """See _run_training; holds the output folder's lock (one run per folder)."""
    from ftkit.core.lock import output_lock

    with output_lock(config.output_dir, "train"):
        try:
            return _run_training(config)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - only a lost peer is turned into one line; the rest re-raised
            message = distributed.lost_peers(err, config.dist_timeout)
            if message is None:
                raise
            raise UserError(message) from None


def _run_training(config: TrainConfig) -> dict:
    """Train; returns the metrics dict. Only the main process writes outputs."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import ProgressCallback
    from trl import SFTTrainer

    from ftkit.stages.train import train_outputs
    from ftkit.stages.train.train_callbacks import EpochSummary, FaultInjection, JsonlLogger, QuietProgress

    if config.use_quantization:
        check_4bit_possible()
    if config.liger_kernel:
        check_liger_possible()
    precision = choose_precision(config.precision)
    out = Path(config.output_dir)
    checkpoints = out / "checkpoints"
    resume_from = find_checkpoint(checkpoints, config.resume)

    tokenizer = load_tokenizer(config.base_model, config.trust_remote_code, config.family, config.thinking)
    train = encode_split(config.train_data, tokenizer, config.max_length)
    check_reasoning(train, families.family_of(tokenizer), config.train_data)
    val = encode_split(config.val_data, tokenizer, config.max_length) if config.val_data else None
    check_cpu_training(config, sum(len(r["input_ids"]) for r in train.rows))
    log.info("train: %d training / %d validation examples (%s, %s format), precision %s%s", len(train.rows),
             len(val.rows) if val else 0, config.base_model, families.family_of(tokenizer).name, precision, ", 4-bit NF4" if config.use_quantization else "")

    log.info("train: %g epoch(s), batch %d x %d accumulation per device, learning rate %g, LoRA r %d alpha %d, "
             "max length %d, gradient checkpointing %s%s", config.epochs, config.batch_size, config.grad_accum,
             config.learning_rate, config.lora_r, config.lora_alpha, config.max_length,
             "on" if config.gradient_checkpointing else "off", f", sharded by {sharding()}" if sharding() else "")
    args = sft_config(config, checkpoints, precision)  # before the model: it opens DeepSpeed ZeRO-3's context
    args.world_size  # noqa: B018 - sets up the process group (with its timeout), for the roll call
    digests = train_outputs.data_digests(config)  # hashed once: the roll call and the manifest
    processes = distributed.roll_call(digests)
    model = load_model(config, precision)
    output_layer.install()
    dropout = lora_dropout(config, model)
    logger = JsonlLogger(out / "train_log.jsonl", resume_step=_checkpoint_step(resume_from))
    callbacks = [logger, EpochSummary(), FaultInjection()]
    if config.early_stopping_patience and val:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer_class = SFTTrainer if config.sparse_logits else full_logits_trainer(SFTTrainer)
    trainer = distributed.rank_zero_writes_checkpoints(trainer_class)(
        model=model, args=args, processing_class=tokenizer, peft_config=lora_config(config, dropout),
        train_dataset=Dataset.from_list(train.rows),
        eval_dataset=Dataset.from_list(val.rows) if val else None, callbacks=callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietProgress())
    if config.use_quantization:
        keep_4bit_gradients_on_cpu(trainer.model)

    manifest = dict(train_outputs.manifest(config, precision, trainer, train, val, digests), lora_dropout_used=dropout,
                    num_nodes=len({p["node"] for p in processes}), world_size=len(processes),
                    ranks=[p["rank"] for p in processes], processes=processes)
    log.info("train: LoRA on %s", ", ".join(f"{kind} ({count} layers)" for kind, count in manifest["lora_modules"].items()))
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "run_manifest.json", dict(manifest, status="running"))
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.time() - started
    final_eval = _final_eval_loss(trainer) if val else None
    output_layer.release()
    staging = _save_on_every_rank(trainer, out)
    if not trainer.is_world_process_zero():
        distributed.leave(keep=trainer)
        distributed.check_outputs_seen(out / "lora_adapter" / "adapter_config.json")
        return {}

    with atomic_dir(out / "lora_adapter") as tmp:
        for item in staging.iterdir():
            if item.name != "training_args.bin":  # a pickle of the arguments; run_manifest.json has them
                os.replace(item, tmp / item.name)
        save_tokenizer(tokenizer, tmp, config.base_model)  # with the chat template the data were rendered for
    shutil.rmtree(staging, ignore_errors=True)
    metrics = train_outputs.metrics(trainer.state, result, runtime, train, val, logger.tokens_seen, final_eval)
    write_json_atomic(out / "metrics.json", metrics)
    train_outputs.plot_loss_curve(trainer.state.log_history, out / "loss_curve.png")
    write_json_atomic(out / "run_manifest.json", dict(manifest, status="complete",
                                                      adapter=adapter_digest(out / "lora_adapter")))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    distributed.leave(keep=trainer)
    return metrics


def _save_on_every_rank(trainer, out: Path) -> Path:
    """The adapter saved through the trainer by every rank into one staging folder; returns it.

    Under FSDP or ZeRO-3 each rank holds a shard of the weights: gathering them is a collective that
    every rank must join (rank 0 alone would write empty shards or wait forever). The trainer does the
    gathering and lets only the main process write."""
    import torch.distributed as dist

    staging = out / ".lora_adapter.saving"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # left by a run that died while saving
        staging.mkdir(parents=True)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    trainer.save_model(str(staging))
    if dist.is_available() and dist.is_initialized():
        log.info("train: rank %d of %d took part in saving the adapter", dist.get_rank(), dist.get_world_size())
    return staging


def _final_eval_loss(trainer) -> float:
    """The validation loss of the finished adapter: the last evaluation if it ran at the last step
    (and no best checkpoint was reloaded), else one more evaluation now. Every rank must call this."""
    state = trainer.state
    evals = [h for h in state.log_history if "eval_loss" in h]
    if evals and evals[-1]["step"] == state.global_step and not trainer.args.load_best_model_at_end:
        return evals[-1]["eval_loss"]
    return trainer.evaluate()["eval_loss"]


def _checkpoint_step(path: str | None) -> int | None:
    return int(Path(path).name.rsplit("-", 1)[1]) if path else None


def summarize(metrics: dict) -> str:
    evals = metrics.get("eval_loss_per_epoch") or []
    val = f", validation loss {evals[0]['eval_loss']:.4f} -> {evals[-1]['eval_loss']:.4f} (best epoch {metrics['best_epoch']})" \
        if evals else ""
    return (f"train: loss {metrics['train_loss_first']:.4f} -> {metrics['train_loss_last']:.4f}{val}; "
            f"{metrics['optimizer_steps']} steps in {metrics['runtime_s']:.1f} s, "
            f"{metrics['tokens_per_second']:.0f} tokens/s, peak memory {metrics['peak_memory_mib']:.0f} MiB")
