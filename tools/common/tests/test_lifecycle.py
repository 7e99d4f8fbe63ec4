"""The one stage lifecycle: lock, skip, supersede, and failure on any exception."""

import json
import subprocess
import sys
import textwrap

import pytest
from chexbench_common.errors import BadInputError, StageBusyError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.lock import LOCK_NAME, FolderLock
from chexbench_common.rundir import StageRun


def _stage(tmp_path):
    return StageRun(tmp_path / "R", "m", "r", "fidelity", tool_version="0")


def _finished(tmp_path, params=None):
    stage = _stage(tmp_path)
    with Lifecycle(stage) as life:
        life.start(params or {"k": 1}, {})
        (stage.dir / "out.csv").write_text("old\n")
        life.finish({"out": stage.dir / "out.csv"})
    return stage


def _manifest(stage):
    return json.loads(stage.manifest_path.read_text())


def test_identical_rerun_skips_and_keeps_the_result(tmp_path):
    stage = _finished(tmp_path)
    before = stage.manifest_path.read_bytes()
    with Lifecycle(_stage(tmp_path)) as life:
        assert life.up_to_date({"k": 1}, {})
    assert stage.manifest_path.read_bytes() == before and stage.is_finished()
    assert not (stage.dir / LOCK_NAME).exists()


def test_force_redoes_and_start_clears_declared_outputs(tmp_path):
    stage = _finished(tmp_path)
    with Lifecycle(_stage(tmp_path), force=True) as life:
        assert not life.up_to_date({"k": 1}, {})
        life.start({"k": 1}, {}, clear=["out.csv"])
        assert not (stage.dir / "out.csv").exists() and not stage.success_path.exists()
        assert _manifest(stage)["status"] == "running"


@pytest.mark.parametrize(
    "error, reason",
    [
        (BadInputError("row 2: NaN"), "row 2: NaN"),
        (KeyboardInterrupt(), "interrupted"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    ],
)
def test_any_exception_after_start_marks_the_run_failed(tmp_path, error, reason):
    stage = _finished(tmp_path)
    with pytest.raises(type(error)), Lifecycle(_stage(tmp_path)) as life:
        life.start({"k": 2}, {})
        raise error
    assert _manifest(stage)["status"] == "failed" and _manifest(stage)["error"] == reason
    assert not stage.success_path.exists() and not stage.is_finished()


def test_failed_validation_of_a_rerun_supersedes_the_old_result(tmp_path):
    stage = _finished(tmp_path)
    with pytest.raises(BadInputError), Lifecycle(_stage(tmp_path)):
        raise BadInputError("embeddings.parquet row 3: vector has NaN")  # before up_to_date / start
    manifest = _manifest(stage)
    assert manifest["status"] == "failed" and "row 3" in manifest["error"]
    assert not stage.success_path.exists()
    assert not (stage.dir / "out.csv").exists()  # the old output is gone too: it would look current


def test_start_removes_every_output_the_previous_manifest_names(tmp_path):
    """Without a `clear` list: what the last finished run recorded goes before any work; folders and files
    outside the stage folder are left."""
    stage = _stage(tmp_path)
    outside = tmp_path / "elsewhere.csv"
    with Lifecycle(stage) as life:
        life.start({"k": 1}, {})
        for name in ("a.csv", "sub/b.parquet"):
            (stage.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (stage.dir / name).write_text("old\n")
        (stage.dir / "images").mkdir()
        (stage.dir / "images" / "x.png").write_bytes(b"png")
        outside.write_text("keep\n")
        life.finish({k: stage.dir / k for k in ("a.csv", "sub/b.parquet", "images")} | {"outside": outside})
    with Lifecycle(_stage(tmp_path)) as life:
        assert not life.up_to_date({"k": 2}, {})
        life.start({"k": 2}, {})
        assert not (stage.dir / "a.csv").exists() and not (stage.dir / "sub" / "b.parquet").exists()
        assert (stage.dir / "images" / "x.png").exists() and outside.read_text() == "keep\n"
        life.finish({})


def test_an_up_to_date_rerun_keeps_its_outputs(tmp_path):
    stage = _finished(tmp_path)
    with Lifecycle(_stage(tmp_path)) as life:
        assert life.up_to_date({"k": 1}, {})
    assert (stage.dir / "out.csv").read_text() == "old\n" and stage.is_finished()


def test_a_refused_first_run_leaves_no_folder(tmp_path):
    with pytest.raises(BadInputError), Lifecycle(_stage(tmp_path)):
        raise BadInputError("bad")
    assert not (tmp_path / "R").exists()


def test_a_second_holder_is_refused_and_changes_nothing(tmp_path):
    stage = _finished(tmp_path)
    before = stage.manifest_path.read_bytes()
    with (
        Lifecycle(_stage(tmp_path)),
        pytest.raises(StageBusyError, match=f"in use by process .* remove .*{LOCK_NAME}"),
        Lifecycle(_stage(tmp_path)),
    ):
        pass
    assert stage.manifest_path.read_bytes() == before and stage.is_finished()


def test_lock_held_by_another_live_process_gives_exit_7(tmp_path):
    """A real second process: it holds the lock until we close its stdin."""
    folder = tmp_path / "stage"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from chexbench_common.lock import FolderLock
                with FolderLock({str(folder)!r}):
                    print("held", flush=True)
                    sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StageBusyError) as caught:
            FolderLock(folder).acquire()
        assert caught.value.exit_code == 7 and f"process {holder.pid}" in str(caught.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with FolderLock(folder):  # released: free again
        pass


def test_stale_lock_of_a_dead_process_is_broken(tmp_path):
    folder = tmp_path / "stage"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder.mkdir()
    import socket

    (folder / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": 0}))
    with FolderLock(folder) as lock:
        assert json.loads(lock.path.read_text())["pid"] != int(dead.stdout)


def test_lock_of_another_host_is_stale_only_after_the_timeout(tmp_path, monkeypatch):
    import os

    folder = tmp_path / "stage"
    folder.mkdir()
    lock_file = folder / LOCK_NAME
    lock_file.write_text(json.dumps({"host": "other-node", "pid": 1, "started": 0}))
    with pytest.raises(StageBusyError, match="other-node"):
        FolderLock(folder).acquire()
    monkeypatch.setenv("CHEXBENCH_LOCK_STALE_S", "60")
    os.utime(lock_file, (0, 0))  # not refreshed since 1970: its holder is gone
    with FolderLock(folder):
        pass


def test_a_shard_that_starts_or_fails_supersedes_the_merged_result(tmp_path):
    merged = _finished(tmp_path)
    shard = StageRun(tmp_path / "R", "m", "r", "fidelity/parts/shard-0-of-2", tool_version="0")
    with pytest.raises(BadInputError), Lifecycle(shard, parent=_stage(tmp_path)):
        raise BadInputError("row 1: bad")
    assert _manifest(merged)["status"] == "superseded" and not merged.success_path.exists()
    assert "shard-0-of-2 failed: row 1: bad" in _manifest(merged)["superseded_by"]["reason"]


def test_a_killed_run_is_recorded_as_failed_by_the_next_one(tmp_path):
    stage = _stage(tmp_path)
    stage.start({"k": 1}, {})  # as a SIGKILL leaves it: running, no marker, the lock gone stale
    with Lifecycle(_stage(tmp_path)) as life:
        assert _manifest(stage)["status"] == "failed" and "killed?" in _manifest(stage)["error"]
        assert not life.up_to_date({"k": 1}, {})
