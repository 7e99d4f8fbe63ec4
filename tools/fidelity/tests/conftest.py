"""Fixtures of the fidelity tests; helpers live in fidelity_data.py (importable by the test modules)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fidelity_data import Dataset, make_dataset  # noqa: E402


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    """60 prompts with random labels (Fracture never positive), 2 synthetic images each, inception d=24, raddino d=8."""
    return make_dataset(tmp_path)
