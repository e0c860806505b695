"""The output layer on the CPU: the loss at supervised positions only, each logit computed once.

With Qwen's 151,936-token vocabulary the output layer is most of a small model's training step. TRL's
SFTTrainer projects the hidden states through it in tiles (its fused LM head, `fused_lm_head=True`). On
CUDA that runs Triton kernels on the supervised positions only, and ftkit leaves it alone there. On the
CPU TRL scores every position, folds each tile in about eight elementwise passes, and recomputes every
tile in the backward pass: measured slower than transformers' plain full-logits cross-entropy.

Here, on the CPU:
  - only the positions whose next-token label is supervised are projected (TRL gathers them for us once
    `_use_triton` says so; its own kernels keep their own copy of that function);
  - a tile of rows x the whole vocabulary goes through one matrix multiply, torch's softmax and one
    max-reduction (for the token accuracy TRL logs); the target's log-probability is the log of its
    softmax, as torch's cross-entropy gives it (from the logits, where it would underflow);
  - the gradient is taken in the same pass: d log p(target) / d hidden = W[target] - softmax @ W, one more
    matrix multiply. The backward pass only scales it, so no logit is computed twice.
While training one tile buffer (evaluating: two; with soft-capping: three) is reused for the whole batch
and from step to step, so memory stays at TILE_BYTES each whatever the batch.
On this 2-core CPU the two matrix multiplies are about three quarters of the layer's time: what is left
to gain is little, and only in the elementwise passes.

The loss and the LoRA gradients equal the full-logits computation (tests/test_train.py). The output
layer's own weight must be frozen (LoRA, QLoRA); with a trainable output layer, a bias, or statistics this
does not compute, TRL's function runs instead.
"""
from __future__ import annotations

from dataclasses import dataclass

# each float32 tile buffer, rows x vocabulary: 883 rows of Qwen's 151,936 columns. Measured on the tiny Qwen2.5
# (before the softmax went in place): 3% faster than 256 MiB, as fast as 1 GiB
TILE_BYTES = 512 * 2**20
OUTPUTS = ("log_probs", "entropy", "is_top1")  # what TRL's SFTTrainer asks for; log_probs always computed
UNDERFLOW = -69.0  # log(1e-30): a probability this small is read from the logits, not from the softmax


def _tile_rows(positions: int, vocab: int) -> int:
    return max(1, min(positions, TILE_BYTES // (4 * vocab)))


def handles(hidden, weight, bias, outputs) -> bool:
    """Whether this layer computes the call: the CPU, a frozen output layer without bias, outputs it knows."""
    return (hidden.device.type == "cpu" and bias is None and not weight.requires_grad
            and set(outputs) <= set(OUTPUTS))


def _make_function():
    import torch

    class SupervisedLogProbs(torch.autograd.Function):
        """log p(target) of each row of `hidden` (its entropy and whether the target is the top token, on
        request), the gradient taken during the forward pass. Same inputs and outputs as TRL's
        ChunkedLogProbFunction, without the bias, chunk size and the two statistics it alone computes."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, temperature, softcap, logit_scale, outputs):
            ctx.set_materialize_grads(False)
            positions, vocab = hidden.shape[0], weight.shape[0]
            weight32, hidden32 = weight.float(), hidden.float()
            rows = _tile_rows(positions, vocab)
            training = ctx.needs_input_grad[0] and not softcap  # the softmax then overwrites the logits
            tiles = Tiles(_buffer("logits", rows, vocab), None if training else _buffer("probs", rows, vocab),
                          _buffer("capped", rows, vocab) if softcap else None)
            log_probs = torch.empty(positions)
            entropy = torch.empty(positions) if "entropy" in outputs else None
            is_top1 = torch.empty(positions, dtype=torch.bool) if "is_top1" in outputs else None
            # -d log p(target) / d hidden per position; the backward pass scales it by the incoming gradient
            direction = torch.empty(positions, hidden.shape[1]) if ctx.needs_input_grad[0] else None
            for start in range(0, positions, rows):
                end = min(start + rows, positions)
                stats = _tile(tiles.view(end - start), hidden32[start:end], weight32, targets[start:end], temperature,
                              softcap, logit_scale, direction[start:end] if direction is not None else None,
                              entropy is not None)
                log_probs[start:end] = stats.log_probs
                if entropy is not None:
                    entropy[start:end] = stats.entropy
                if is_top1 is not None:
                    is_top1[start:end] = stats.is_top1
            ctx.save_for_backward(direction)
            ctx.hidden_dtype = hidden.dtype
            if is_top1 is not None:
                ctx.mark_non_differentiable(is_top1)
            return log_probs, entropy, None, None, is_top1

        @staticmethod
        def backward(ctx, grad_log_probs, grad_entropy, *_):
            if grad_entropy is not None:
                raise RuntimeError("ftkit's CPU output layer has no gradient for the entropy (TRL logs it only)")
            (direction,) = ctx.saved_tensors
            grad_hidden = None
            if grad_log_probs is not None and direction is not None:
                grad_hidden = (direction * -grad_log_probs.float().unsqueeze(1)).to(ctx.hidden_dtype)
            return grad_hidden, None, None, None, None, None, None

    return SupervisedLogProbs


_BUFFERS: dict = {}


def _buffer(name: str, rows: int, vocab: int):
    """A rows x vocabulary float32 buffer kept from one call to the next. A fresh one of hundreds of MB comes
    from the kernel as untouched pages: allocating the tiles at each call cost an eighth of a training step
    (tiny Qwen2.5 here: 940 tokens/s, 1,075 with the buffers kept)."""
    import torch

    buffer = _BUFFERS.get(name)
    if buffer is None or buffer.shape[1] != vocab or buffer.shape[0] < rows:
        _BUFFERS.pop(name, None)  # freed before its successor is allocated
        _BUFFERS[name] = buffer = torch.empty(rows, vocab)
    return buffer[:rows]


def release() -> None:
    """Free the kept buffers (at the end of training)."""
    _BUFFERS.clear()


@dataclass
class Tiles:
    """The reused buffers, rows x vocabulary: the logits, the probabilities (none where the softmax overwrites
    the logits), and with soft-capping the capped logits."""
    logits: object
    probs: object | None
    capped: object | None

    def view(self, n: int) -> Tiles:
        return Tiles(*(None if t is None else t[:n] for t in (self.logits, self.probs, self.capped)))


@dataclass
class TileStats:
    log_probs: object
    entropy: object | None
    is_top1: object


def _tile(tiles: Tiles, hidden, weight, target, temperature: float, softcap: float | None, logit_scale: float,
          direction, with_entropy: bool) -> TileStats:
    """One tile of positions: logits, softmax, the target's log-probability, and the gradient direction.

    While training without soft-capping nothing reads the logits after the softmax, which then overwrites
    them (one buffer, and 15% faster than writing a second). The entropy is logsumexp(z) - sum(p * z); while
    training, sum(p * z) = z_t + hidden . direction (z is linear in the hidden state), a dot product of
    hidden-size rows instead of a pass over the vocabulary."""
    import torch

    everyone = torch.arange(len(target))
    torch.mm(hidden, weight.t(), out=tiles.logits)
    z, chain = _final_logits(tiles, temperature, softcap, logit_scale)
    z_target, z_max = z[everyone, target], z.amax(dim=1)
    in_place = tiles.probs is None  # (training without soft-capping: see forward)
    p = torch.ops.aten._softmax.out(z, 1, False, out=z if in_place else tiles.probs)
    log_probs = torch.log(p[everyone, target])
    lost = log_probs < UNDERFLOW  # p(target) below float32's normal range: its log from the logits instead
    if lost.any():
        logits = z[lost] if not in_place else torch.mm(hidden[lost], weight.t()).mul_(chain)
        log_probs[lost] = z_target[lost] - torch.logsumexp(logits, dim=1)
    entropy = None
    if with_entropy and not in_place:
        entropy = (z_target - log_probs) - torch.bmm(p.unsqueeze(1), z.unsqueeze(2)).view(len(target))
    if direction is not None:
        p[everyone, target] -= 1  # softmax - one-hot: d(-log p(target)) / d logit
        if isinstance(chain, torch.Tensor):
            p.mul_(chain)
        torch.mm(p, weight, out=direction)
        if not isinstance(chain, torch.Tensor) and chain != 1.0:
            direction.mul_(chain)
        if with_entropy and entropy is None:
            entropy = -log_probs - (hidden * direction).sum(dim=1)
    return TileStats(log_probs, entropy, z_target >= z_max)


def _final_logits(tiles: Tiles, temperature: float, softcap: float | None, logit_scale: float):
    """The raw logits (in tiles.logits) as the model's head makes them final: scaled, soft-capped, divided by
    the temperature. Returns them and d(final) / d(raw): a number, or per element (in tiles.capped)."""
    import torch

    y = tiles.logits
    if not softcap:
        scale = logit_scale / temperature
        if scale != 1.0:
            y.mul_(scale)
        return y, scale
    y.mul_(logit_scale / softcap).tanh_()                                  # t = tanh(scale * y / cap)
    z = torch.mul(y, softcap / temperature, out=tiles.capped)
    chain = y  # d/dy = scale * (1 - t^2) / T, made in place once t is no longer needed for z
    chain.mul_(y).neg_().add_(1).mul_(logit_scale / temperature)
    return z, chain


_installed = {}


def install() -> None:
    """Route TRL's fused LM head through this layer wherever `handles` says so (idempotent)."""
    import trl.trainer.utils as trl_utils

    if _installed:
        return
    original = trl_utils._ChunkedLogProbFunction
    supervised = _make_function()

    class Dispatch:
        """TRL's `_ChunkedLogProbFunction`, or this layer on the CPU."""

        @staticmethod
        def apply(hidden, weight, bias, targets, temperature, chunk_size, softcap=None, logit_scale=1.0,
                  outputs=("log_probs",)):
            if handles(hidden, weight, bias, outputs):
                return supervised.apply(hidden, weight, targets, temperature, softcap, logit_scale, outputs)
            return original.apply(hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale,
                                  outputs)

    original_use_triton = trl_utils._use_triton
    # TRL's head gathers the supervised positions where this says yes; its kernels look up their own copy
    trl_utils._use_triton = lambda device: device.type == "cpu" or original_use_triton(device)
    trl_utils._ChunkedLogProbFunction = Dispatch
    _installed.update(original=original, use_triton=original_use_triton)


def uninstall() -> None:
    """TRL's own head again (tests compare the two)."""
    import trl.trainer.utils as trl_utils

    if _installed:
        trl_utils._ChunkedLogProbFunction = _installed["original"]
        trl_utils._use_triton = _installed["use_triton"]
        _installed.clear()
