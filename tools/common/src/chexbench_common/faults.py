"""Fault injection for the kill-and-resume tests: a named point where the process SIGKILLs itself.

Set CHEXBENCH_FAULT=<point>[@<n>] (the n-th time the point is reached, default 1); unset, a point costs one dict
lookup. Points: `<stage>:started` (the Lifecycle, right after the manifest says running) and `<stage>:batch`
(after each finished batch of a stage that works in batches). Tests use it instead of racing a kill against time.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def fault_point(name: str) -> None:
    """SIGKILL this process if CHEXBENCH_FAULT names this point (and this is its n-th visit)."""
    wanted = os.environ.get("CHEXBENCH_FAULT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
