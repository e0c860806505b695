"""LoRA / QLoRA fine-tuning of a chat model on prepared data (TRL SFTTrainer + PEFT).

The loss covers the answer tokens and the final EOS only; prompts are rendered by the toolkit's one
renderer, exactly as evaluation and the Ollama Modelfile will render them. Writes to --output-dir:

  lora_adapter/        the PEFT adapter + tokenizer (+ chat template), written only when complete
  checkpoints/         Trainer checkpoints (--resume continues from the latest)
  train_log.jsonl      step, epoch, loss, learning rate, grad norm, tokens/s; eval losses
  metrics.json         first/last train loss, eval loss per epoch, best epoch, runtime, tokens, peak memory
  loss_curve.png       training and validation loss against the step
  runs/ (TensorBoard)  under checkpoints/, for `tensorboard --logdir models/finetuned/checkpoints`
  run_manifest.json    every argument, package versions, git commit, data sha256, seed, hardware

examples:
  python scripts/train_lora.py --base-model meta-llama/Llama-2-7b-chat-hf \\
      --train-data data/finetune/train_train.jsonl --val-data data/finetune/train_validation.jsonl \\
      --output-dir models/finetuned --epochs 3 --batch-size 4 --learning-rate 2e-4 --lora-r 8 --lora-alpha 16
  python scripts/train_lora.py --config configs/llama2-7b-qlora.yaml --epochs 1
  accelerate launch --multi_gpu --num_processes 2 scripts/train_lora.py ...     (make train NUM_GPUS=2)
"""
from ftkit.config import schema as options
from ftkit.core.cli import log, setup_logging
from ftkit.stages.train.train import TrainConfig


def main():
    config = options.parse(TrainConfig, options.build_parser(TrainConfig, __doc__))
    setup_logging()
    from ftkit.stages.train import distributed
    from ftkit.stages.train.train import run_training, summarize

    metrics = run_training(config)
    if metrics:  # the main process
        log.info(summarize(metrics))
        log.info("train: adapter in %s/lora_adapter", config.output_dir)
    distributed.exit_if_left()  # a distributed run: its process group's objects are never freed (see leave)

