"""Chat models behind one interface, for evaluation, the interactive REPL and the export checks.

`HFChatModel` wraps a transformers model (a base, a base + LoRA adapter with the adapter switchable
off, or a merged model); `GGUFChatModel` wraps a GGUF file through llama-cpp-python. Both take token
ids from the one renderer (ftkit.core.prompts), so every backend sees the same prompt.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from ftkit.core import families
from ftkit.core.cli import UserError
from ftkit.core.loading import load_hf, load_tokenizer

CONTEXT_CAP = 4096  # tokens; what Ollama's num_ctx is capped at too
PREFIX_REUSE_MIN = 16  # tokens a batch must share before its common prefix is computed once
RESERVED_CACHE_MIN_ROWS = 8  # a batch this large decodes into a reserved cache (see reserved_cache)


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    seconds: float  # wall time of the batch that produced it, shared evenly by its members


def reserved_cache(capacity: int):
    """A transformers DynamicCache whose layers write each new token into tensors reserved for `capacity`
    tokens and hand attention a view of the part written. The default grows by concatenation, copying every
    layer's keys and values at each token: half the time of 64 answers of 160 tokens, measured. transformers'
    StaticCache avoids the copy but attends over its whole length at every step, masked: slower again
    (1.6 ms per attention call against 0.9 ms here, measured). Same keys and values, so the same answers."""
    from transformers import Cache, DynamicCache
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        def __init__(self):
            super().__init__()
            self.length = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                shape = (*key_states.shape[:2], capacity, key_states.shape[-1])
                self.reserved = (key_states.new_empty(shape), value_states.new_empty(shape))
            new = key_states.shape[-2]
            if self.length + new > capacity:
                raise ValueError(f"reserved cache: {self.length + new} tokens, room for {capacity}")
            self.reserved[0][:, :, self.length:self.length + new] = key_states
            self.reserved[1][:, :, self.length:self.length + new] = value_states
            self.length += new
            self.keys, self.values = (t[:, :, :self.length] for t in self.reserved)
            return self.keys, self.values

        def reorder_cache(self, beam_idx) -> None:
            if self.length:
                self.reserved = tuple(t.index_select(0, beam_idx.to(t.device)) for t in self.reserved)
                self.keys, self.values = (t[:, :, :self.length] for t in self.reserved)

    # a DynamicCache, as the models expect, whose layers (made as each is first written) are reserved ones
    cache = DynamicCache.__new__(DynamicCache)
    Cache.__init__(cache, layer_class_to_replicate=ReservedLayer)
    return cache


def _cut_at_eos(ids: list[int], stops: set[int], pad: int | None) -> list[int]:
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    while ids and pad is not None and ids[-1] == pad:
        ids = ids[:-1]
    return ids


class HFChatModel:
    def __init__(self, model, tokenizer, name: str, adapter: bool | None = None):
        """adapter: None for a plain model; True/False for a PeftModel with the adapter on/off."""
        self.model, self.tokenizer, self.name, self.adapter = model, tokenizer, name, adapter
        # every token that ends an answer: the family's end of turn and the generation config's EOS list
        config = getattr(model, "generation_config", None)
        self.stop_ids = families.stop_token_ids(tokenizer, getattr(config, "eos_token_id", None))

    def _context(self):
        return self.model.disable_adapter() if self.adapter is False else contextlib.nullcontext()

    @property
    def recurrent(self) -> bool:
        """Layers that carry a state through the sequence (Qwen3.5's Gated DeltaNet): padding after a shared
        prefix would decay that state and shift their convolution, so their batches are padded before the start
        only, where a zero state stays zero."""
        return "linear_attention" in (getattr(self.model.config, "layer_types", None) or ())

    @property
    def device(self):
        return next(self.model.parameters()).device

    def generate(self, prompt_ids: list[list[int]], decoding: Decoding, batch_size: int = 16) -> list[Generation]:
        """Batched generation: prompts sorted by length (less padding), left padding with an attention
        mask (right padding changed 28 of 32 greedy outputs here), original order restored."""
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        results: list[Generation | None] = [None] * len(prompt_ids)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            for i, generation in zip(batch, self._generate_batch([prompt_ids[i] for i in batch], decoding), strict=True):
                results[i] = generation
        return results

    def _generate_batch(self, batch: list[list[int]], decoding: Decoding) -> list[Generation]:
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        started = time.perf_counter()
        with torch.no_grad(), self._context():
            if decoding.greedy:
                rows = self._greedy(input_ids, attention, decoding.max_new_tokens)
            else:
                torch.manual_seed(decoding.seed)
                out = self.model.generate(input_ids=input_ids, attention_mask=attention, pad_token_id=pad,
                                          eos_token_id=self.stop_ids, do_sample=True, temperature=decoding.temperature,
                                          top_p=decoding.top_p, max_new_tokens=decoding.max_new_tokens)
                rows = [_cut_at_eos(row, set(self.stop_ids), pad) for row in out[:, width:].tolist()]
        seconds = (time.perf_counter() - started) / len(batch)
        return [Generation(tok.decode(ids, skip_special_tokens=True).strip(), ids, seconds) for ids in rows]

    def _greedy(self, input_ids, attention, max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding that drops each sequence from the batch once it has ended.

        transformers' generate keeps computing finished rows until the longest one ends; with answers
        of very different lengths that is most of the work. Same tokens as generate (tested), faster."""
        import torch

        stops = set(self.stop_ids)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
        # the prompt's logits at its last position only: the output layer over every prompt position was most of
        # a batch's prefill (152k columns each with Qwen)
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                         logits_to_keep=1, cache=self._preallocated_cache(*input_ids.shape, max_new_tokens))
        cache, last = out.cache, positions[:, -1]
        next_ids = out.logits[:, -1].argmax(-1)
        generated: list[list[int]] = [[] for _ in range(len(input_ids))]
        alive = list(range(len(input_ids)))
        while True:
            keep = []
            for i, (row, token) in enumerate(zip(alive, next_ids.tolist(), strict=True)):
                if token not in stops:
                    generated[row].append(token)
                    if len(generated[row]) < max_new_tokens:
                        keep.append(i)
            if not keep:
                return generated
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=attention.device)
                # reorder_cache with the kept rows selects them in every kind of layer, the recurrent states of
                # linear attention (Qwen3.5's Gated DeltaNet) included, which batch_select_indices does not know
                cache.reorder_cache(index)
                attention, next_ids, last = attention[index], next_ids[index], last[index]
                alive = [alive[i] for i in keep]
            attention = torch.cat([attention, attention.new_ones(len(alive), 1)], dim=1)
            last = last + 1
            out = self.model(input_ids=next_ids[:, None], attention_mask=attention, position_ids=last[:, None],
                             cache=cache, use_cache=True)
            cache, next_ids = out.cache, out.logits[:, -1].argmax(-1)

    def _preallocated_cache(self, rows: int, width: int, max_new_tokens: int):
        """For a batch, a key/value cache reserved once for the whole answer (see reserved_cache); one row keeps
        the default, whose copies are small. Only where every layer attends to the whole sequence: sliding windows
        and recurrent states (Gemma, Qwen3.5) keep the default too. None: the default cache."""
        layer_types = set(getattr(self.model.config, "layer_types", None) or ("full_attention",))
        if rows < RESERVED_CACHE_MIN_ROWS or layer_types != {"full_attention"}:
            return None
        return reserved_cache(width + max_new_tokens)

    def answer_losses(self, pairs: list[tuple[list[int], list[int]]], batch_size: int = 16) -> list[float]:
        """Mean negative log-likelihood of each answer (teacher-forced, answer tokens only)."""
        import torch
        import torch.nn.functional as F

        losses = []
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            width = max(len(p) + len(a) for p, a in batch)
            pad = self.tokenizer.pad_token_id or 0
            ids = torch.tensor([p + a + [pad] * (width - len(p) - len(a)) for p, a in batch], device=self.device)
            mask = torch.tensor([[1] * (len(p) + len(a)) + [0] * (width - len(p) - len(a)) for p, a in batch],
                                device=self.device)
            labels = torch.tensor([[-100] * len(p) + a + [-100] * (width - len(p) - len(a)) for p, a in batch],
                                  device=self.device)
            with torch.no_grad(), self._context():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none", ignore_index=-100)
            counts = (labels[:, 1:] != -100).sum(dim=1)
            losses.extend((nll.sum(dim=1) / counts.clamp(min=1)).tolist())
        return losses

    def next_token_logprobs(self, contexts: list[list[int]], candidates: list[list[int]],
                            batch_size: int = 16) -> list[list[float]]:
        """log p(token | context) for each candidate token of each context, in as little work as the answers
        need: a context that is a prefix of another (an option of two tokens asks after the prompt and after
        its first token) is read from the longer one's pass; contexts are taken in sorted order, so a batch
        shares its common prefix (a subject's instruction and k-shot examples), which is computed once; only
        the positions read are projected onto the vocabulary."""
        import torch

        rows = _prefix_groups(contexts)  # (the longest context of a group, its members), in sorted order
        results: list[list[float] | None] = [None] * len(contexts)
        for batch in _progress(_prefix_batches(rows, contexts, batch_size), f"{self.name}: scoring", len(rows), batch_size):
            longest = [contexts[row[0]] for row in batch]
            # the last `keep` positions cover every member's last token (rows end together: left padding)
            keep = max(len(c) - min(len(contexts[i]) for i in members) + 1 for c, (_, members) in zip(longest, batch, strict=True))
            with torch.no_grad(), self._context():
                logits = self._last_logits(longest, keep)
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, (c, (_, members)) in enumerate(zip(longest, batch, strict=True)):
                for i in members:
                    results[i] = logprobs[row, keep - 1 - (len(c) - len(contexts[i])), candidates[i]].tolist()
        return results

    def _last_logits(self, sequences: list[list[int]], keep: int):
        """The logits of the last `keep` positions of each sequence: their common prefix in one pass (its cache
        repeated for the batch), then the rest of each, left-padded after it."""
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        shared = min(len(_common_prefix(sequences)), min(map(len, sequences)) - keep)
        cache, past = None, []
        if shared >= PREFIX_REUSE_MIN and not self.recurrent:
            out = self.model(input_ids=torch.tensor([sequences[0][:shared]], device=self.device), use_cache=True,
                             logits_to_keep=1)
            cache, past = out.cache, [1] * shared
            cache.batch_repeat_interleave(len(sequences))
        else:
            shared = 0
        rest = [s[shared:] for s in sequences]
        width = max(map(len, rest))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rest], device=self.device)
        mask = torch.tensor([past + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=cache is not None,
                          logits_to_keep=keep).logits

    def stream(self, prompt_ids: list[int], decoding: Decoding):
        """Yield text pieces as they are generated."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {"input_ids": torch.tensor([prompt_ids], device=self.device), "streamer": streamer,
                  "max_new_tokens": decoding.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id,
                  "eos_token_id": self.stop_ids, "do_sample": not decoding.greedy}
        if not decoding.greedy:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def work():
            with torch.no_grad(), self._context():
                self.model.generate(**kwargs)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()


class GGUFChatModel:
    """A GGUF through llama-cpp-python, fed the renderer's token ids (BOS included, so none is added)."""

    def __init__(self, path: str, tokenizer, name: str = "gguf", n_ctx: int = 0, n_gpu_layers: int = 0,
                 lora_path: str | None = None, logits_all: bool = False):
        """n_ctx 0: the context the model was trained with, at most CONTEXT_CAP (llama.cpp reserves the KV
        cache for the whole context up front: 131,072 tokens for Llama-3.1). logits_all: keep every
        position's logits (an n_ctx x vocabulary array; for losses and logit comparisons) — generation
        alone needs none. n_gpu_layers: layers offloaded to the GPU (-1 all; no effect on a CPU build)."""
        import llama_cpp
        from llama_cpp import Llama

        from ftkit.core.threads import llama_thread_args

        if not Path(path).is_file():
            raise UserError(f"{path}: no such GGUF file")
        self.tokenizer, self.name, self.path = tokenizer, name, path
        if not n_ctx:
            meta = Llama(model_path=str(path), vocab_only=True, verbose=False).metadata
            trained = int(meta.get(f"{meta.get('general.architecture')}.context_length", CONTEXT_CAP))
            n_ctx = min(trained, CONTEXT_CAP)
        if lora_path and not Path(lora_path).is_file():
            raise UserError(f"{lora_path}: no such adapter GGUF")
        self.logits_all = logits_all
        # with every position's logits kept, llama.cpp's output buffer and its graph's logits each hold
        # n_batch x vocabulary floats: 0.3 GB apiece for Qwen's 151,936 at the default 512, 19 MB at 32
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 32 if logits_all else 512),
                         logits_all=logits_all, verbose=False, seed=0, n_gpu_layers=n_gpu_layers, lora_path=lora_path,
                         **llama_thread_args())
        # the file's own end-of-generation token plus the family's (the same ids: the export checks it)
        self.stop_ids = set(families.stop_token_ids(tokenizer)) | {self.llm.token_eos()}
        # a recurrent state (Qwen3.5's Gated DeltaNet) cannot be cut back to a shared prefix: every prompt from 0
        self.recurrent = bool(llama_cpp.llama_model_is_recurrent(self.llm.model)
                              or llama_cpp.llama_model_is_hybrid(self.llm.model))

    def _tokens(self, prompt_ids: list[int], decoding: Decoding):
        self.llm.reset()
        kwargs = {"temp": 0.0, "top_k": 1} if decoding.greedy else {"temp": decoding.temperature, "top_p": decoding.top_p}
        count = 0
        for token in self.llm.generate(prompt_ids, reset=True, **kwargs):
            if token in self.stop_ids or count >= decoding.max_new_tokens:
                return
            count += 1
            yield token

    def generate(self, prompt_ids: list[list[int]], decoding: Decoding, batch_size: int = 1) -> list[Generation]:
        results = []
        for ids in prompt_ids:
            started = time.perf_counter()
            tokens = list(self._tokens(ids, decoding))
            results.append(Generation(self.tokenizer.decode(tokens, skip_special_tokens=True).strip(), tokens,
                                      time.perf_counter() - started))
        return results

    def answer_losses(self, pairs: list[tuple[list[int], list[int]]], batch_size: int = 1) -> list[float]:
        import numpy as np

        if not self.logits_all:  # llama.cpp would leave the scores unwritten: the losses would be garbage
            raise ValueError(f"{self.name}: answer losses need a GGUFChatModel opened with logits_all=True")
        losses = []
        for prompt, answer in pairs:
            ids = prompt + answer
            self.llm.reset()
            self.llm.eval(ids)
            logits = np.asarray(self.llm.scores[: len(ids)], dtype=np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            # the logits at position t predict token t + 1
            nll = [-logprobs[t - 1, ids[t]] for t in range(len(prompt), len(ids))]
            losses.append(float(sum(nll) / len(nll)))
        return losses

    def next_token_logprobs(self, contexts: list[list[int]], candidates: list[list[int]],
                            batch_size: int = 1) -> list[list[float]]:
        """The same question as HFChatModel.next_token_logprobs, through llama.cpp. Contexts are taken in
        sorted order, so each one evaluates only what follows the prefix it shares with the one before
        (the k-shot examples of a subject are computed once)."""
        import llama_cpp
        import numpy as np

        n_vocab = self.llm.n_vocab()
        results: list[list[float] | None] = [None] * len(contexts)
        for i in _progress(sorted(range(len(contexts)), key=lambda i: contexts[i]), f"{self.name}: scoring", len(contexts)):
            ids = contexts[i]
            if len(ids) >= self.llm.n_ctx():
                raise UserError(f"{self.path}: a prompt of {len(ids)} tokens does not fit the context of {self.llm.n_ctx()}")
            done = self.llm.input_ids[: self.llm.n_tokens].tolist()
            shared = len(_common_prefix([done, ids])) if done and not self.recurrent else 0
            self.llm.n_tokens = min(shared, len(ids) - 1)  # at least the last token is evaluated: its logits are needed
            self.llm.eval(ids[self.llm.n_tokens:])
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(n_vocab,))
            logits = logits.astype(np.float64) - logits.max()
            logprobs = logits - np.log(np.exp(logits).sum())
            results[i] = [float(logprobs[t]) for t in candidates[i]]
        return results

    def stream(self, prompt_ids: list[int], decoding: Decoding):
        tokens: list[int] = []
        shown = ""
        for token in self._tokens(prompt_ids, decoding):
            tokens.append(token)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                yield text[len(shown):]
                shown = text


def _common_prefix(sequences: list[list[int]]) -> list[int]:
    first = sequences[0]
    length = next((k for k in range(len(first)) if any(len(s) <= k or s[k] != first[k] for s in sequences)), len(first))
    return first[:length]


def _prefix_groups(contexts: list[list[int]]) -> list[tuple[int, list[int]]]:
    """Contexts grouped by prefix chains: (index of the longest, indices of every member). In sorted order a
    prefix comes right before its extensions."""
    groups: list[tuple[int, list[int]]] = []
    for i in sorted(range(len(contexts)), key=lambda i: contexts[i]):
        if groups:
            longest, members = groups[-1]
            if contexts[i][: len(contexts[longest])] == contexts[longest]:
                groups[-1] = (i, members + [i])
                continue
        groups.append((i, [i]))
    return groups


def _prefix_batches(rows: list[tuple[int, list[int]]], contexts: list[list[int]], size: int) -> list[list]:
    """Sorted rows in batches of at most `size`, a new one begun where the rows stop sharing most of the
    batch's common prefix (the next subject's questions), so that prefix is worth computing once."""
    batches, shared = [], 0
    for row in rows:
        seq = contexts[row[0]]
        if batches and len(batches[-1]) < size:
            common = len(_common_prefix([contexts[batches[-1][0][0]], seq]))
            if len(batches[-1]) == 1 or common >= shared // 2:
                shared = common if len(batches[-1]) == 1 else min(shared, common)
                batches[-1].append(row)
                continue
        batches.append([row])
    return batches


def _progress(items, what: str, total: int, per_item: int = 1):
    """A progress bar over `total` prompts (items of per_item each), on a terminal only."""
    import sys

    from tqdm import tqdm

    bar = tqdm(total=total, desc=what, unit="prompt", disable=not sys.stderr.isatty(), leave=False)
    for item in items:
        yield item
        bar.update(min(per_item, total - bar.n))
    bar.close()


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


def load_models(base_model: str, lora_model: str | None = None, merged_model: str | None = None,
                gguf: str | None = None, trust_remote_code: bool = False, with_base: bool = True,
                allow_pickle: bool = False, family: str | None = None, n_gpu_layers: int = 0,
                gguf_losses: bool = True):
    """(tokenizer, base ChatModel or None, candidate ChatModel or None). gguf_losses: the GGUF keeps
    every position's logits, for answer losses (a chat needs none).

    With a LoRA adapter, base and fine-tuned share one copy of the weights (the adapter switched off
    for the base)."""

    if sum(x is not None for x in (lora_model, merged_model, gguf)) > 1:
        raise UserError("give only one of --lora-model, --merged-model, --gguf")
    if lora_model and not Path(lora_model, "adapter_config.json").exists():
        raise UserError(f"{lora_model}: no adapter_config.json (run `make train` first)")
    tokenizer = load_tokenizer(lora_model or merged_model or base_model, trust_remote_code, family)
    base = candidate = None
    if lora_model:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_hf(base_model, trust_remote_code, allow_pickle), lora_model)
        model.eval()
        candidate = HFChatModel(model, tokenizer, "finetuned", adapter=True)
        if with_base:
            base = HFChatModel(model, tokenizer, "base", adapter=False)
        return tokenizer, base, candidate
    if with_base:
        base = HFChatModel(load_hf(base_model, trust_remote_code, allow_pickle), tokenizer, "base")
    if merged_model:
        candidate = HFChatModel(load_hf(merged_model, trust_remote_code, allow_pickle), tokenizer, "finetuned")
    elif gguf:
        candidate = GGUFChatModel(gguf, tokenizer, "finetuned", n_gpu_layers=n_gpu_layers, logits_all=gguf_losses)
    return tokenizer, base, candidate
