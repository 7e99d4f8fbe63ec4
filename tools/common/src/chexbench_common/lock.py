"""An exclusive lock on a stage folder that works on local disks and on cluster file systems (NFS, Lustre).

The lock is a file created with O_CREAT | O_EXCL (atomic on NFSv3+ and Lustre, unlike flock/fcntl on some mounts)
holding the holder's host, pid and start time. While held, a daemon thread touches it every HEARTBEAT_S seconds.
A lock is stale when its holder is on this host and its pid is gone, or when it has not been touched for
$CHEXBENCH_LOCK_STALE_S seconds (default 600: a holder on another host that died). A stale lock is broken by
renaming it away (only one contender's rename succeeds), then taken again with O_EXCL.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .errors import StageBusyError

LOCK_NAME = ".chexbench.lock"
HEARTBEAT_S = 30.0
DEFAULT_STALE_S = 600.0


def _stale_after() -> float:
    return float(os.environ.get("CHEXBENCH_LOCK_STALE_S", DEFAULT_STALE_S))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or damaged: judged by its age alone


def why_stale(path: Path, holder: dict) -> str | None:
    """Why the lock at `path` is stale, or None while its holder may still be alive."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return "gone"
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if not _pid_alive(holder["pid"]):
            return f"process {holder['pid']} on this host is gone"
        return None
    if age > _stale_after():
        return f"not refreshed for {age:.0f} s"
    return None


class FolderLock:
    """Hold `<folder>/.chexbench.lock` for the duration of a `with` block."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._created: list[Path] = []  # folders this lock made, removed again on release if left empty

    def _try_create(self) -> bool:
        record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "token": self.token}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def acquire(self) -> None:
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing
        for _ in range(3):
            if self._try_create():
                self._start_heartbeat()
                return
            holder = _read(self.path)
            if holder is None:
                continue  # released between our two calls
            if why_stale(self.path, holder) is None:
                started = holder.get("started")
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "an unknown time"
                raise StageBusyError(
                    f"{self.folder} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
                    f"(since {since}); wait for it to finish, or remove {self.path} if that process is gone"
                )
            try:  # break the stale lock: only one contender's rename succeeds
                os.replace(self.path, self.path.with_name(f"{LOCK_NAME}.stale-{self.token}"))
                self.path.with_name(f"{LOCK_NAME}.stale-{self.token}").unlink()
            except FileNotFoundError:
                continue
        raise StageBusyError(f"{self.folder}: could not take {self.path} (contended); try again")

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.path)
                except OSError:
                    return

        self._thread = threading.Thread(target=beat, name=f"lock {self.folder}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = _read(self.path)
        if holder and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
        for folder in self._created:  # innermost first; a folder with anything in it stays
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
