"""Proof that each GGUF file is the merged model: the prompt's token ids in llama.cpp equal the HF tokenizer's for
the same rendered prompt (BOS once); the F16 file's greedy continuation equals the merged HF model's token for token;
each quant's top-1 agreement and mean KL divergence against F16 over test-set positions; and each type's cost on
the task's own metrics (ROUGE-L, loss) against F16, within margins.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from ftkit.core import families, prompts
from ftkit.core.inference import CONTEXT_CAP, Decoding, GGUFChatModel, HFChatModel
from ftkit.core.loading import dtype_name, load_hf
from ftkit.verify import general_margins, metrics
from ftkit.verify.equality import BOUNDS
from ftkit.verify.task import load_test_cases, run_model

log = logging.getLogger(__name__)


# how much a quantization may lose against F16 on the task before acceptance warns: ROUGE-L (char),
# absolute; answer loss, relative
DEFAULT_MARGINS = {"rougeL_char": 0.02, "loss": 0.02}


def check_conversations() -> list[prompts.Conversation]:
    return [
        prompts.from_alpaca({"instruction": "中国的首都是哪里？"}),
        prompts.from_alpaca({"instruction": "请把下面的英文单词翻译成中文。", "input": "apple", "system": "你是一个翻译助手。"}),
        prompts.from_messages([{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"},
                               {"role": "user", "content": "1 + 1 等于多少？"}]),
    ]


def token_ids_match(gguf: GGUFChatModel, tokenizer) -> dict:
    """llama.cpp's tokenization of the rendered text equals the HF ids (BOS once, special tokens parsed)."""
    mismatches = []
    convs = check_conversations()
    for conv in convs:
        hf_ids = prompts.render_ids(conv, tokenizer).prompt_ids
        text = prompts.render_text(conv, tokenizer)
        cpp_ids = gguf.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if cpp_ids != hf_ids:
            mismatches.append({"text": text, "hf": hf_ids, "llama_cpp": cpp_ids})
    return {"prompts": len(convs), "identical": len(convs) - len(mismatches), "mismatches": mismatches[:3]}


GREEDY_CHECK_TOKENS = 16  # tokens of each greedy answer compared between the GGUF and the HF model


# two tokens whose logits differ by less than this are a tie: F16 rounding may order them either way
TIE_MARGIN = 0.05


def tie_margin(reference_dtype: str, row) -> float:
    """The logit gap below which two tokens count as tied, against a reference computed in
    `reference_dtype`: TIE_MARGIN for fp32, more for a 16-bit reference, scaled to the logits (bf16 keeps
    8 significant bits)."""
    relative = BOUNDS[reference_dtype][1] if reference_dtype != "fp32" else 0.0
    return max(TIE_MARGIN, relative * float(abs(row).max()))


class RecordedAnswers:
    """A model's greedy answers on the check prompts, recorded so that the model itself can be freed
    before the GGUF files are opened (a 7B in memory twice is what a CPU host cannot afford)."""

    def __init__(self, model, ids: list[list[int]], decoding: Decoding, dtype: str):
        self.ids, self.decoding, self.dtype = ids, decoding, dtype
        self.answers = model.generate(ids, decoding, batch_size=1)

    def generate(self, ids, decoding, batch_size=1):
        if ids != self.ids or decoding != self.decoding:
            raise ValueError("RecordedAnswers replays only the prompts and decoding it recorded")
        return self.answers


def record_chat_answers(model, tokenizer, chats: list[list[dict]], dtype: str,
                        max_tokens: int = GREEDY_CHECK_TOKENS) -> dict:
    """A model's greedy answers to chats (lists of messages), with their prompt ids: the reference that
    llama-server's chat answers must reproduce (ftkit.verify.deploy_parity)."""
    ids = [prompts.render_ids(prompts.from_messages(chat), tokenizer).prompt_ids for chat in chats]
    answers = model.generate(ids, Decoding(max_new_tokens=max_tokens), batch_size=1)
    return {"dtype": dtype, "max_tokens": max_tokens,
            "chats": [{"messages": chat, "prompt_ids": p, "token_ids": a.token_ids, "text": a.text}
                      for chat, p, a in zip(chats, ids, answers, strict=True)]}


def hf_chat_answers(model_path: str, chats: list[list[dict]], family: str | None = None) -> dict:
    """The merged HF model's greedy answers to `chats` (the deployment check's reference), the model loaded in
    its checkpoint's dtype and freed before any GGUF opens."""
    import gc

    from ftkit.core.loading import load_tokenizer

    tokenizer = load_tokenizer(model_path, family=family)
    model = load_hf(model_path, keep_checkpoint_dtype=True)
    answers = record_chat_answers(HFChatModel(model, tokenizer, "merged"), tokenizer, chats, dtype_name(model.dtype))
    del model
    gc.collect()
    return answers


def check_prompt_ids(tokenizer) -> list[list[int]]:
    return [prompts.render_ids(c, tokenizer).prompt_ids for c in check_conversations()]


def greedy_agreement(gguf: GGUFChatModel, reference, tokenizer, new_tokens: int = GREEDY_CHECK_TOKENS,
                     reference_dtype: str = "fp32") -> dict:
    """Greedy answers of the GGUF against a reference model (HF, recorded HF answers, or another GGUF) on
    the check prompts.

    Where they part, the GGUF's own logits at that position tell whether the two tokens were a tie (within
    tie_margin for the reference's dtype): a tie is reported, not failed, and every parting is listed with
    its position."""
    ids = check_prompt_ids(tokenizer)
    decoding = Decoding(max_new_tokens=new_tokens)
    ours = gguf.generate(ids, decoding)
    theirs = reference.generate(ids, decoding, batch_size=1)
    end = families.end_of_turn_id(tokenizer)
    identical, ties, partings = 0, 0, []
    for n, (prompt, a, b) in enumerate(zip(ids, ours, theirs, strict=True)):
        if a.token_ids == b.token_ids:
            identical += 1
            continue
        partings.append({"prompt": n, **parting(gguf, prompt, a.token_ids, b.token_ids, end, reference_dtype)})
        ties += partings[-1]["tie"]
    return {"prompts": len(ids), "identical": identical, "near_ties": ties, "tie_margin": TIE_MARGIN,
            "reference_dtype": reference_dtype, "partings": partings, "tokens_per_prompt": new_tokens,
            "agree": identical + ties == len(ids)}


def parting(gguf: GGUFChatModel, prompt: list[int], ours: list[int], theirs: list[int], end: int,
            reference_dtype: str = "fp32") -> dict:
    """Where two greedy answers to one prompt part, and whether the GGUF's own logits there call the two
    tokens a tie (within tie_margin for the reference's dtype). `ours` is the GGUF's answer."""
    import numpy as np

    k = next((i for i, (x, y) in enumerate(zip(ours, theirs, strict=False)) if x != y), min(len(ours), len(theirs)))
    mine = ours[k] if k < len(ours) else end  # a sequence that stopped chose its end token
    other = theirs[k] if k < len(theirs) else end
    gguf.llm.reset()
    gguf.llm.eval(prompt + ours[:k])
    row = np.asarray(gguf.llm.scores[len(prompt) + k - 1], dtype=np.float64)
    margin, bound = float(abs(row[mine] - row[other])), tie_margin(reference_dtype, row)
    return {"position": k, "gguf_token": int(mine), "reference_token": int(other), "logit_margin": margin,
            "tie_margin": bound, "tie": margin <= bound}


def position_logits(gguf: GGUFChatModel, sequences: list[list[int]]):
    """Yields the logits at every position of each sequence: a float32 view of llama-cpp-python's score
    buffer, valid until the next sequence is evaluated (copy it to keep it). A generator, so a comparison
    holds one sequence at a time: with a 152k vocabulary each position's row is 0.6 MB."""
    for ids in sequences:
        gguf.llm.reset()
        gguf.llm.eval(ids)
        yield gguf.llm.scores[: len(ids)]


def agreement(reference, other, chunk: int = 8) -> dict:
    """Top-1 agreement and mean KL(reference || other) over the positions of per-sequence logit arrays,
    computed `chunk` rows at a time in float64: with a 152k vocabulary each float64 row is 1.2 MB, and
    log-softmax and KL make several temporaries of each."""
    import numpy as np

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    positions, agree, kl_sum = 0, 0, 0.0
    for ref_rows, rows in zip(reference, other, strict=True):
        for start in range(0, len(ref_rows), chunk):
            p = log_softmax(ref_rows[start:start + chunk].astype(np.float64))
            q = log_softmax(rows[start:start + chunk].astype(np.float64))
            kl_sum += float((np.exp(p) * (p - q)).sum())
            agree += int((p.argmax(1) == q.argmax(1)).sum())
            positions += len(p)
    return {"positions": positions, "top1_agreement": agree / positions if positions else float("nan"),
            "mean_kl": kl_sum / positions if positions else float("nan")}


def max_abs_difference(a: list, b: list) -> float:
    return max((float(abs(x - y).max()) for x, y in zip(a, b, strict=True)), default=0.0)


def eval_sequences(tokenizer, test_data: str | None, positions: int = 300) -> list[list[int]]:
    """Prompt + answer ids from the test split, up to about `positions` tokens in all."""
    from ftkit.core.loading import conversation_of, read_jsonl

    convs = [conversation_of(r) for r in read_jsonl(test_data)] if test_data and Path(test_data).exists() else []
    convs += [prompts.Conversation(c.turns[:-1] + (prompts.Turn(c.turns[-1].user, "好的。"),), c.system)
              for c in check_conversations()]
    sequences, total = [], 0
    for conv in convs:
        if total >= positions:
            break
        ids = prompts.render_ids(conv, tokenizer).input_ids
        sequences.append(ids)
        total += len(ids)
    return sequences


def check_files(model_path: str, files: dict, test_data: str | None = None, n_gpu_layers: int = 0,
                family: str | None = None, margins: dict | None = None,
                answer_chats: list[list[dict]] | None = None) -> dict:
    """Verification (and task metrics, with test data) of the GGUF files against the merged HF model.

    The HF model is loaded once, in its checkpoint's dtype on a CPU (a bf16 7B in fp32 would be 27 GB),
    its answers and figures are recorded, and it is freed before any GGUF is opened: the merged model
    and a GGUF are never in memory together."""
    import gc

    from ftkit.core.loading import load_tokenizer

    tokenizer = load_tokenizer(model_path, family=family)
    model = load_hf(model_path, keep_checkpoint_dtype=True)
    dtype = dtype_name(model.dtype)
    hf = HFChatModel(model, tokenizer, "merged")
    answers = RecordedAnswers(hf, check_prompt_ids(tokenizer), Decoding(max_new_tokens=GREEDY_CHECK_TOKENS), dtype)
    with_tests = bool(test_data and Path(test_data).is_file())
    hf_figures = task_figures(hf, tokenizer, test_data) if with_tests else None
    deploy_answers = record_chat_answers(hf, tokenizer, answer_chats, dtype) if answer_chats else None
    del hf, model
    gc.collect()
    result = {"verification": verify_files(answers, files, tokenizer, test_data, n_gpu_layers)}
    if deploy_answers:
        result["deploy_answers"] = deploy_answers
    if with_tests:
        result["margins"] = dict(margins or DEFAULT_MARGINS)
        result["task_metrics"] = task_metrics(hf_figures, files, tokenizer, test_data, n_gpu_layers)
    return result


class StoredLogits:
    """Per-sequence logit arrays kept in a temporary folder and read back one at a time: the F16
    reference for every quantization, without holding 300 positions x 152k floats (0.18 GB) in memory
    beside the model."""

    def __init__(self, folder: Path, arrays):
        import numpy as np

        self.paths = []
        for n, rows in enumerate(arrays):
            self.paths.append(folder / f"{n}.npy")
            np.save(self.paths[-1], rows)

    def __iter__(self):
        import numpy as np

        return (np.load(path) for path in self.paths)


def context_for(lengths: list[int]) -> int:
    """The context a check needs: its longest sequence, rounded up to 256. llama.cpp reserves the KV
    cache for the whole context (0.5 GB at 4,096 tokens for Llama-3.1-8B in f16), so a check asks only
    for what it uses."""
    return min(CONTEXT_CAP, 256 * math.ceil((max(lengths, default=1) + 8) / 256))


def verify_files(hf: RecordedAnswers, files: dict, tokenizer, test_data: str | None, n_gpu_layers: int = 0) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ftkit-f16-logits-") as folder:
        return _verify_files(hf, files, tokenizer, test_data, n_gpu_layers, Path(folder))


def _verify_files(hf: RecordedAnswers, files: dict, tokenizer, test_data: str | None, n_gpu_layers: int,
                  folder: Path) -> dict:
    sequences = eval_sequences(tokenizer, test_data)
    n_ctx = context_for([len(s) for s in sequences] + [len(p) + GREEDY_CHECK_TOKENS for p in check_prompt_ids(tokenizer)])
    results = {}
    reference = None
    for quant in ["F16"] + [q for q in files if q != "F16"]:
        log.info("gguf: verifying %s", Path(files[quant]["path"]).name)
        gguf = GGUFChatModel(files[quant]["path"], tokenizer, quant, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                             logits_all=True)
        result = {"loads": True, "token_ids": token_ids_match(gguf, tokenizer),
                  "greedy_vs_hf": greedy_agreement(gguf, hf, tokenizer, reference_dtype=hf.dtype)}
        if reference is None:  # F16: the reference the quantizations are measured against
            reference = StoredLogits(folder, position_logits(gguf, sequences))
            result["vs_f16"] = agreement(reference, reference)
        else:
            result["vs_f16"] = agreement(reference, position_logits(gguf, sequences))  # one sequence at a time
        results[quant] = result
        del gguf
    f16 = results["F16"]
    results["passed"] = (all(r["token_ids"]["identical"] == r["token_ids"]["prompts"] for r in results.values()
                             if isinstance(r, dict))
                         and f16["greedy_vs_hf"]["agree"])
    return results


TASK_MAX_NEW_TOKENS = 64


def task_figures(model, tokenizer, test_data: str, batch_size: int = 16, max_new_tokens: int = TASK_MAX_NEW_TOKENS) -> dict:
    """The evaluation's own metrics — answer loss and ROUGE-L (char) — of one model on the test split."""

    cases = load_test_cases(test_data, tokenizer)
    aggregate = run_model(model, cases, Decoding(max_new_tokens=max_new_tokens), batch_size, metrics.Scorer())["aggregate"]
    return {"loss": aggregate["loss"], "rougeL_char": aggregate["rougeL_char"], "records": len(cases)}


def task_metrics(hf_figures: dict, files: dict, tokenizer, test_data: str, n_gpu_layers: int = 0) -> dict:
    """The task figures of the merged HF model (measured before) and of every GGUF type, through
    llama.cpp: what a quantization costs on this task."""
    log.info("gguf: task metrics on %d test records (each GGUF; the HF merged model's are in)", hf_figures["records"])
    result = {"records": hf_figures["records"], "max_new_tokens": TASK_MAX_NEW_TOKENS,
              "hf": {k: hf_figures[k] for k in ("loss", "rougeL_char")}, "types": {}}

    n_ctx = context_for([len(c.prompt_ids) + max(len(c.answer_ids), TASK_MAX_NEW_TOKENS)
                         for c in load_test_cases(test_data, tokenizer)])
    for quant, info in files.items():
        gguf = GGUFChatModel(info["path"], tokenizer, quant, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, logits_all=True)
        figures = task_figures(gguf, tokenizer, test_data, batch_size=1)
        result["types"][quant] = {k: figures[k] for k in ("loss", "rougeL_char")}
        del gguf
    f16 = result["types"]["F16"]
    for quant, figs in result["types"].items():
        figs["delta_vs_f16"] = {k: figs[k] - f16[k] for k in ("loss", "rougeL_char")}
        figs["size_vs_f16"] = files[quant]["size_bytes"] / files["F16"]["size_bytes"]
    return result


def within_margin(figures: dict, f16: dict, margins: dict) -> bool:
    return (f16["rougeL_char"] - figures["rougeL_char"] <= margins["rougeL_char"]
            and figures["loss"] <= f16["loss"] * (1 + margins["loss"]))


def keeps_general_ability(quant: str, general: dict | None) -> bool:
    """Within the general check's margin against F16 (eval_general.json), or not checked."""
    diff = (general or {}).get("differences", {}).get(f"{quant} - F16")
    return diff is None or general_margins.within_margin(diff, general.get("margins", general_margins.DEFAULT_MARGINS))


def best_within_margin(report: dict, general: dict | None = None) -> str | None:
    """The smallest GGUF type whose task metrics stay within the margins of F16 and, when the general check
    ran (eval_general.json), whose general accuracy does too."""
    metrics, margins = report.get("task_metrics"), report.get("margins", DEFAULT_MARGINS)
    if not metrics:
        return None
    f16 = metrics["types"]["F16"]
    fits = [q for q, figs in metrics["types"].items()
            if within_margin(figs, f16, margins) and keeps_general_ability(q, general)]
    return min(fits, key=lambda q: report["files"][q]["size_bytes"]) if fits else None
