"""The one instruction and conversation template, used for training and generation alike, and the token ids built
from them the way LLaVA-Rad builds them.

LLaVA-Rad trained its synthetic-data runs with "Describe the findings of the chest x-ray." but evaluated with "...
given the following indication: {reason}" (CheXGenBench defect 20); here both sides use INSTRUCTION. The template is
LLaVA's `v1` (Vicuna): the system line, then `USER: <image>\\n{instruction} ASSISTANT:`, and in training the findings
and `</s>` after it. Only the findings and `</s>` carry a loss.
"""

from __future__ import annotations

TEMPLATE = "v1"
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
INSTRUCTION = "Describe the findings of the chest x-ray."
IMAGE_TOKEN = "<image>"
IGNORE = -100  # label of the tokens without a loss (torch's cross-entropy default)


def describe(instruction: str = INSTRUCTION) -> dict[str, str]:
    """What a manifest records, so a generation can check it uses the instruction its fine-tuning used."""
    return {"template": TEMPLATE, "system": SYSTEM, "instruction": instruction}


def prompt_text(instruction: str = INSTRUCTION) -> str:
    """The v1 conversation up to the assistant's turn (the image before the instruction, as LLaVA places it)."""
    return f"{SYSTEM} USER: {IMAGE_TOKEN}\n{instruction} ASSISTANT:"


def prompt_ids(tokenizer, text: str, image_token_id: int, n_image_tokens: int) -> list[int]:
    """LLaVA-Rad's `tokenizer_image_token`, then transformers' expansion of the placeholder: the text split at
    `<image>`, each chunk tokenized on its own without special tokens, one BOS first, and between the chunks the
    placeholder repeated once per image feature (patch token) the model inserts."""
    chunks = text.split(IMAGE_TOKEN)
    ids = [tokenizer.bos_token_id]
    for index, chunk in enumerate(chunks):
        if index:
            ids += [image_token_id] * n_image_tokens
        ids += tokenizer(chunk, add_special_tokens=False)["input_ids"]
    return ids


def training_ids(
    tokenizer, findings: str, image_token_id: int, n_image_tokens: int, max_length: int, instruction: str = INSTRUCTION
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one image-findings pair: the prompt masked out, the findings and `</s>` kept; cut at
    max_length (LLaVA-Rad's model_max_length) from the end of the answer."""
    prompt = prompt_ids(tokenizer, prompt_text(instruction), image_token_id, n_image_tokens)
    answer = tokenizer(findings.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + answer)[:max_length]
    labels = ([IGNORE] * len(prompt) + answer)[:max_length]
    return ids, labels
