"""plan.csv under concurrent builds: make validate's axes may run as parallel Slurm jobs, each adding its sets."""

from __future__ import annotations

import threading

import pytest
from chexbench_common.errors import StageBusyError
from chexbench_common.lock import FolderLock
from chexbench_validate import plan
from chexbench_validate.plan import PLAN, PlannedSet, add_sets, read_plan


def planned(set_id: str) -> PlannedSet:
    return PlannedSet(set_id=set_id, axis="reports", control=set_id, level=0.0, level_label=set_id, run_id="validate-r")


def test_a_build_waits_for_another_builds_plan_lock(tmp_path):
    """A build meeting the folder's lock held by another (here a thread of this process, as live as another job)
    waits for it instead of failing with exit 7, and no build's rows are lost."""
    add_sets(tmp_path, [planned("first")])
    held, release = threading.Event(), threading.Event()

    def other_build():
        with FolderLock(tmp_path):
            held.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=other_build)
    thread.start()
    assert held.wait(timeout=30)
    threading.Timer(0.3, release.set).start()
    add_sets(tmp_path, [planned("second")])  # blocks until the other build lets go
    thread.join(timeout=30)
    assert release.is_set() and not thread.is_alive()
    assert list(read_plan(tmp_path / PLAN)["set_id"]) == ["first", "second"]


def test_a_build_gives_up_on_a_lock_held_too_long(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "PLAN_LOCK_WAIT_S", 0.2)
    with FolderLock(tmp_path), pytest.raises(StageBusyError, match="is in use by process"):
        add_sets(tmp_path, [planned("late")])
    assert not (tmp_path / PLAN).exists()
