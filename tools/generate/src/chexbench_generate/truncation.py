"""Count prompts longer than a pipeline's text-encoder limit (the pipeline cuts them; the original did so silently).

Each pipeline family encodes a prompt through one or more tokenizers, some after adding a prefix (Sana's "complex
human instruction", Lumina's system prompt) or lower-casing it. A `Budget` reproduces exactly the text and token
limit a pipeline uses for one tokenizer, so the count matches what the pipeline actually cut.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

MAX_EXAMPLES = 20


@dataclass(frozen=True)
class Budget:
    slot: str  # the pipeline attribute of the tokenizer, e.g. tokenizer_3
    tokenizer: object
    limit: int
    render: Callable[[str], str] = lambda p: p  # the text the pipeline actually tokenizes


def _call_default(pipe, name: str):
    return inspect.signature(type(pipe).__call__).parameters[name].default


def _max_seq(pipe, call_kwargs: dict) -> int:
    return int(call_kwargs.get("max_sequence_length", _call_default(pipe, "max_sequence_length")))


def clip_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """Stable Diffusion 1/2 and RadEdit: one tokenizer padded/truncated to its model_max_length."""
    return [Budget("tokenizer", pipe.tokenizer, int(pipe.tokenizer.model_max_length))]


def sd3_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """SD3: both CLIP tokenizers at the first one's model_max_length, T5 at max_sequence_length."""
    clip_limit = int(pipe.tokenizer.model_max_length)
    budgets = [Budget("tokenizer", pipe.tokenizer, clip_limit), Budget("tokenizer_2", pipe.tokenizer_2, clip_limit)]
    if pipe.tokenizer_3 is not None:
        budgets.append(Budget("tokenizer_3", pipe.tokenizer_3, _max_seq(pipe, call_kwargs)))
    return budgets


def flux_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """Flux: CLIP at its model_max_length (pooled), T5 at max_sequence_length."""
    return [
        Budget("tokenizer", pipe.tokenizer, int(pipe.tokenizer.model_max_length)),
        Budget("tokenizer_2", pipe.tokenizer_2, _max_seq(pipe, call_kwargs)),
    ]


def pixart_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """PixArt-Σ: lower-cased, stripped prompt (clean_caption off) through T5 at max_sequence_length."""
    return [Budget("tokenizer", pipe.tokenizer, _max_seq(pipe, call_kwargs), lambda p: p.lower().strip())]


def sana_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """Sana: the complex human instruction (if any) is prepended and the limit grows by its length minus 2."""
    chi = call_kwargs.get("complex_human_instruction", _call_default(pipe, "complex_human_instruction"))
    limit = _max_seq(pipe, call_kwargs)
    if not chi:
        return [Budget("tokenizer", pipe.tokenizer, limit, lambda p: p.lower().strip())]
    prefix = "\n".join(chi)
    limit += len(pipe.tokenizer.encode(prefix)) - 2
    return [Budget("tokenizer", pipe.tokenizer, limit, lambda p: prefix + p.lower().strip())]


def lumina_budgets(pipe, call_kwargs: dict) -> list[Budget]:
    """Lumina 2: '<system prompt> <Prompt Start> <prompt>' through Gemma at max_sequence_length."""
    system = call_kwargs.get("system_prompt")
    system = pipe.system_prompt if system is None else system
    return [Budget("tokenizer", pipe.tokenizer, _max_seq(pipe, call_kwargs), lambda p: system + " <Prompt Start> " + p)]


def count_truncated(budgets: list[Budget], prompts: dict[str, str]) -> list[dict]:
    """For each budget: its limit, how many prompts exceed it, and the first few prompt_ids that do."""
    report = []
    for budget in budgets:
        over = [
            pid
            for pid, text in prompts.items()
            if len(budget.tokenizer(budget.render(text), truncation=False)["input_ids"]) > budget.limit
        ]
        report.append(
            {
                "slot": budget.slot,
                "limit": budget.limit,
                "prompts": len(prompts),
                "truncated": len(over),
                "examples": over[:MAX_EXAMPLES],
            }
        )
    return report


def combine_reports(reports: list[list[dict]]) -> list[dict]:
    """Sum per-shard truncation reports (shards hold disjoint prompts)."""
    combined: dict[str, dict] = {}
    for report in reports:
        for entry in report:
            slot = combined.setdefault(
                entry["slot"],
                {"slot": entry["slot"], "limit": entry["limit"], "prompts": 0, "truncated": 0, "examples": []},
            )
            slot["prompts"] += entry["prompts"]
            slot["truncated"] += entry["truncated"]
            slot["examples"] = (slot["examples"] + entry["examples"])[:MAX_EXAMPLES]
    return list(combined.values())
