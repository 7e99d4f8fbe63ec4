"""Truncated prompts are counted as the pipeline truncates them, and recorded in the manifest."""

import pytest
import torch
from chexbench_generate.registry import REGISTRY
from chexbench_generate.truncation import count_truncated
from generate_helpers import PROMPT_TEXTS, make_prompts, prompt_id, read_manifest

WORDS = " ".join(PROMPT_TEXTS).replace(",", "").split()
LENGTHS = range(1, 41, 3)


def _prompt(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words))


def _embeds(pipe, family: str, prompt: str, call_kwargs: dict) -> torch.Tensor:
    if family == "sd":
        return pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    keys = {
        "sana": ("complex_human_instruction", "max_sequence_length"),
        "pixart_sigma": ("max_sequence_length",),
        "lumina": ("system_prompt", "max_sequence_length"),
    }[family]
    return pipe.encode_prompt(
        prompt, do_classifier_free_guidance=False, device="cpu", **{k: call_kwargs[k] for k in keys if k in call_kwargs}
    )[0]


@pytest.mark.parametrize(
    "family, model, call_kwargs",
    [
        ("sd", "SD-V1-5", {}),
        ("pixart_sigma", "pixart_sigma", {"max_sequence_length": 16}),
        ("sana", "sana", {"max_sequence_length": 16, "complex_human_instruction": None}),
        (
            "sana",
            "sana",
            {"max_sequence_length": 16, "complex_human_instruction": ["Describe the chest x-ray:", "Text: "]},
        ),
        ("lumina", "lumina", {"max_sequence_length": 32, "system_prompt": "You are a radiologist."}),
    ],
)
def test_counted_exactly_when_the_pipeline_cuts_the_prompt(family, model, call_kwargs, tiny):
    import diffusers

    pipe = diffusers.DiffusionPipeline.from_pretrained(tiny(family)[0])
    (budget,) = REGISTRY[model].budgets(pipe, call_kwargs)
    decisions = []
    for n in LENGTHS:
        text = _prompt(n)
        if len(budget.tokenizer(budget.render(text))["input_ids"]) == budget.limit:
            continue  # exactly full: one more word is cut although nothing was, so the reference cannot tell
        counted = count_truncated([budget], {"p": text})[0]["truncated"] == 1
        # Reference: the pipeline cut the prompt iff one more word leaves its text embedding unchanged.
        cut = torch.equal(
            _embeds(pipe, family, text, call_kwargs), _embeds(pipe, family, text + " effusion", call_kwargs)
        )
        decisions.append((n, counted, cut))
    assert all(counted == cut for _, counted, cut in decisions), decisions
    assert {cut for _, _, cut in decisions} == {True, False}  # both cases occur


def test_manifest_records_truncated_prompts(tiny, tmp_path, cli):
    texts = [_prompt(2), _prompt(30), _prompt(4), _prompt(40)]
    prompts = make_prompts(tmp_path / "prompts.parquet", texts)
    path, config = tiny("sd")
    result = cli(
        "run",
        "--model",
        "SD-V1-4",
        "--model-path",
        path,
        "--config",
        config,
        "--prompts",
        prompts,
        "--results",
        tmp_path,
        "--steps",
        1,
    )
    assert result.exit_code == 0, result.output
    (entry,) = read_manifest(tmp_path, "SD-V1-4", "default")["truncation"]
    assert (entry["slot"], entry["limit"], entry["prompts"], entry["truncated"]) == ("tokenizer", 16, 4, 2)
    assert entry["examples"] == [prompt_id(texts[1]), prompt_id(texts[3])]
