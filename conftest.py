"""Repository-wide test hygiene: a CLI's `--progress` sets CHEXBENCH_PROGRESS for its process (by design); in one
pytest process that would leak from one test (or a module fixture that runs a CLI) into the next, so every test
starts and ends with the value the session started with."""

import os

import pytest

SESSION_PROGRESS = os.environ.get("CHEXBENCH_PROGRESS")


def _restore() -> None:
    if SESSION_PROGRESS is None:
        os.environ.pop("CHEXBENCH_PROGRESS", None)
    else:
        os.environ["CHEXBENCH_PROGRESS"] = SESSION_PROGRESS


@pytest.fixture(autouse=True)
def _progress_mode_per_test():
    _restore()
    yield
    _restore()
