"""Fixtures: the planted-signal classify worlds (classify_world.py) and one thread per process."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from classify_world import World, make_world  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The test networks are tiny: one thread per process (here and in the CLI subprocesses) is ~10x faster than two
    on a shared 2-core machine, where OpenMP threads wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("classify"))


@pytest.fixture
def fresh(tmp_path) -> World:
    return make_world(tmp_path)
