"""A model's answers on the task's test split, scored: what the evaluation stage reports for base and fine-tuned,
and what the GGUF checks measure for each quantization type."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ftkit.core import prompts
from ftkit.core.cli import UserError
from ftkit.core.inference import Decoding, perplexity
from ftkit.core.loading import conversation_of, read_jsonl
from ftkit.verify import metrics


@dataclass
class TestCase:
    id: str
    instruction: str
    input: str
    reference: str
    prompt_ids: list[int]
    answer_ids: list[int]
    opens_thinking: bool = False  # the prompt opened the think block: the generation starts inside it
    think_tags: tuple[str, str] = (prompts.THINK_OPEN, prompts.THINK_CLOSE)  # the model's own (Gemma 4: a channel)


def load_test_cases(path: str, tokenizer, system: str | None = None) -> list[TestCase]:
    cases = []
    for i, record in enumerate(read_jsonl(path)):
        try:
            conv = conversation_of(record)
            if system and not conv.system:
                conv = prompts.Conversation(conv.turns, system)
            ids = prompts.render_ids(conv, tokenizer)
        except (prompts.PromptError, KeyError) as err:
            raise UserError(f"{path}: record {i + 1}: {err}") from None
        if conv.is_open:
            raise UserError(f"{path}: record {i + 1} has no reference answer")
        cases.append(TestCase(str(record.get("id", i + 1)), record.get("instruction", conv.turns[-1].user),
                              record.get("input", ""), conv.turns[-1].answer, ids.prompt_ids, ids.answer_ids,
                              prompts.opens_thinking(tokenizer, ids.prompt_ids), prompts.think_tags(tokenizer)))
    if not cases:
        raise UserError(f"{path}: no test records")
    return cases


def run_model(model, cases: list[TestCase], decoding: Decoding, batch_size: int, scorer) -> dict:
    """Generate, score and measure one model on every case."""
    started = time.perf_counter()
    generations = model.generate([c.prompt_ids for c in cases], decoding, batch_size)
    seconds = time.perf_counter() - started
    losses = model.answer_losses([(c.prompt_ids, c.answer_ids) for c in cases], batch_size)
    rows = []
    for case, generation, loss in zip(cases, generations, losses, strict=True):
        # a thinking model's trace is not its answer: the answer is scored, the trace's length reported
        reasoning, answer = prompts.split_generation(generation.text, case.opens_thinking, case.think_tags)
        row = scorer.score(answer, case.reference)
        row.update(answer=answer, loss=loss, perplexity=perplexity(loss), generated_tokens=len(generation.token_ids),
                   reasoning_chars=len(reasoning or ""), latency_s=generation.seconds)
        rows.append(row)
    tokens = sum(r["generated_tokens"] for r in rows)
    aggregate = {name: metrics.mean([r[name] for r in rows]) for name in metrics.PER_RECORD}
    aggregate.update(
        loss=metrics.mean([r["loss"] for r in rows]),
        perplexity=perplexity(metrics.mean([r["loss"] for r in rows])),
        corpus_bleu=metrics.corpus_bleu([r["answer"] for r in rows], [c.reference for c in cases]),
        generated_tokens=tokens, generation_seconds=seconds,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        mean_latency_s=metrics.mean([r["latency_s"] for r in rows]),
        answers_with_reasoning=sum(r["reasoning_chars"] > 0 for r in rows),
        mean_reasoning_chars=metrics.mean([r["reasoning_chars"] for r in rows]),
    )
    return {"rows": rows, "aggregate": aggregate}
