"""The align tests' fixtures: the world of align_world.py, built once per session (tests that change it take a fresh
one; runs in the shared world use their own run ids) or fresh per test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from align_world import World, make_world  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("align"))


@pytest.fixture
def fresh(tmp_path) -> World:
    return make_world(tmp_path)
