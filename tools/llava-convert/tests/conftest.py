"""Fixtures of the llava-convert tests (nothing is downloaded)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llava_rad(tmp_path_factory):
    """A tiny random LLaVA-Rad in LLaVA-Rad's own layout (tiny.write_tiny_llava_rad): `.llava_rad` (adapter, projector,
    config, open_clip tower checkpoint) and `.vicuna` (fp16 Llama + tokenizer). Treat as read-only; copy to mutate."""
    from chexbench_llava_convert.tiny import write_tiny_llava_rad

    return write_tiny_llava_rad(tmp_path_factory.mktemp("tiny-llava-rad"), seed=0)


@pytest.fixture(scope="session")
def converted_tiny_llava_rad(tiny_llava_rad, tmp_path_factory) -> Path:
    """`tiny_llava_rad` converted by `convert` (fp32, LoRA kept as `adapter/`). Read-only."""
    from chexbench_llava_convert.convert import convert

    out = tmp_path_factory.mktemp("converted") / "llava-rad-hf"
    return convert(tiny_llava_rad.llava_rad, tiny_llava_rad.vicuna, out, dtype="float32").out
