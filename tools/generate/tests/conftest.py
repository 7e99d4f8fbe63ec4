"""Shared fixtures: tiny pipelines built once per session, a prompts table, an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from generate_helpers import PROMPT_TEXTS, make_prompts  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine spinning threads cost seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """tiny(family) -> (pipeline folder, config file); each family is built once per session."""
    from chexbench_generate.tiny import build_tiny_pipeline, write_tiny_config

    root = tmp_path_factory.mktemp("tiny")
    built: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in built:
            built[family] = (
                build_tiny_pipeline(family, root / family),
                write_tiny_config(family, root / f"{family}.json"),
            )
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_lora(tiny, tmp_path_factory):
    """tiny_lora(family) -> LoRA file for the tiny pipeline of `family` (built once)."""
    from chexbench_generate.tiny import build_tiny_lora

    root = tmp_path_factory.mktemp("lora")
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_lora(family, tiny(family)[0], root / family / "lora.safetensors")
        return built[family]

    return get


@pytest.fixture(scope="session")
def prompts5(tmp_path_factory) -> Path:
    return make_prompts(tmp_path_factory.mktemp("prompts") / "prompts.parquet", list(PROMPT_TEXTS))


@pytest.fixture
def cli():
    """cli(*args) -> click Result of chexbench-generate run in-process (stderr kept apart)."""
    from chexbench_generate.cli import main

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
