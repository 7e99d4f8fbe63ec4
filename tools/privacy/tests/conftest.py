"""Fixtures of the privacy tests; the world builder lives in privacy_data.py (importable by the test modules)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from privacy_data import World, make_world  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """40 training images (2 per patient), 30 holdout images, 5 sampled prompts x 3 generations (one an exact copy
    of its source), 6 training images copied at each of the 4 control strengths, thumbnail embeddings, a tiny
    random re-ID network."""
    return make_world(tmp_path_factory.mktemp("privacy"))
