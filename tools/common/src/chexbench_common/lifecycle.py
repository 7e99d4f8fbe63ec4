"""The one stage lifecycle: lock the folder, skip or start, finish, and fail on *any* exception.

    with Lifecycle(stage, force=force) as life:
        plan = validate_inputs()                    # a failure here already invalidates the previous outputs
        if life.up_to_date(params, inputs):
            return ...                              # same inputs and params as a finished run: nothing to do
        life.start(params, inputs, weights, clear=[...])
        ... work ...
        life.finish(outputs)

Rules, the same for every stage and merge step:
- a second process on the same folder gets StageBusyError (exit 7) and touches nothing;
- a re-run that does not skip removes _SUCCESS and the declared outputs before any work, so nothing stale can be
  collected; if it fails before start() (bad new inputs), the previous manifest is marked failed and its outputs go
  too. The declared outputs are the `clear` list plus every file the previous manifest names under `outputs` (what
  the last finished run wrote, in this folder): a stage gets the rule without listing its files twice. A folder
  output (generated images, an adapter) is left, since it may hold work a run resumes from; it never counts without
  _SUCCESS and a `success` manifest;
- any exception, KeyboardInterrupt and bugs included, marks the manifest failed with the reason and is re-raised;
- success is the manifest's `success` status plus _SUCCESS, written last;
- a shard folder names its merged stage folder as `parent`: when the shard starts work or fails, the merged result
  is superseded too (under the parent's lock), so a merge over changed parts is never left looking current.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ChexbenchError
from .faults import fault_point
from .lock import FolderLock
from .rundir import StageRun


def failure_reason(exc: BaseException) -> str:
    """One line for the manifest: the message of an expected error, else the exception type and message."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    first = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, ChexbenchError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class Lifecycle:
    """One run of one stage folder under its lock (see the module docstring)."""

    def __init__(self, stage: StageRun, *, force: bool = False, parent: StageRun | None = None):
        self.stage = stage
        self.force = force
        self.parent = parent
        self.lock = FolderLock(stage.dir)
        self.skipped = False
        self.started = False
        self.finished = False
        self.previous_outputs: list[Path] = []

    def __enter__(self) -> Lifecycle:
        self.lock.acquire()
        self._record_dead_run()
        self.previous_outputs = self._recorded_outputs()
        return self

    def _recorded_outputs(self) -> list[Path]:
        """The files the previous run's manifest names as its outputs, inside this folder only."""
        outputs = self.stage.read_manifest().get("outputs")
        if not isinstance(outputs, dict):
            return []
        folder = self.stage.dir.resolve()
        paths = [folder / str(rel) for rel in outputs.values()]
        return [p for p in paths if p.resolve().is_relative_to(folder) and p != folder]

    def _remove_outputs(self, paths) -> None:
        for path in paths:
            path = Path(path)
            path = path if path.is_absolute() else self.stage.dir / path
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)

    def _record_dead_run(self) -> None:
        """Under the lock nobody else is working here: a manifest still `running` (or `success` without _SUCCESS)
        belongs to a process that was killed; say so, so the manifest and the marker agree again."""
        manifest = self.stage.read_manifest()
        if manifest.get("status") in ("running", "success") and not self.stage.success_path.exists():
            self.stage.fail(f"the process ended before the run finished (killed?); was {manifest['status']}")
            self.stage.manifest = {}

    def up_to_date(self, params: dict, inputs: dict[str, str | Path]) -> bool:
        """True when a finished run has the same params and inputs (and --force was not given): skip the work."""
        self.skipped = not self.force and self.stage.is_complete(params, inputs)
        return self.skipped

    def start(
        self,
        params: dict,
        inputs: dict[str, str | Path],
        weights: dict[str, str] | None = None,
        clear: list[str | Path] = (),
    ) -> None:
        """Supersede the previous run (its _SUCCESS and the `clear` outputs go), then record this one as running."""
        self._supersede_parent(f"{self.stage.stage} was started again")
        self.stage.start(params, inputs, weights)
        self._remove_outputs([*clear, *self.previous_outputs])
        self.started = True
        fault_point(f"{self.stage.stage.split('/')[0]}:started")

    def update(self, **fields) -> None:
        self.stage.update(**fields)

    def finish(self, outputs: dict[str, str | Path] | None = None) -> None:
        self.stage.finish(outputs)
        self.finished = True

    def _supersede_parent(self, reason: str) -> None:
        if self.parent is not None and self.parent.success_path.exists():
            with FolderLock(self.parent.dir):
                self.parent.supersede(reason)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None and not self.finished and not self.skipped:
                self.stage.fail(failure_reason(exc))
                if not self.started:  # refused before start(): the previous result's files must not look current
                    self._remove_outputs(self.previous_outputs)
                self._supersede_parent(f"{self.stage.stage} failed: {failure_reason(exc)}")
        finally:
            self.lock.release()
