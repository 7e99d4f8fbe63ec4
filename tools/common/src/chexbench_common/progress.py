"""Progress for long work: a tqdm bar on a terminal, one plain log line every N items or T seconds otherwise.

Mode comes from the `mode` argument, else $CHEXBENCH_PROGRESS (auto|bar|log|none); `auto` means a bar when
stderr is a terminal and log lines otherwise (batch logs under Slurm stay free of carriage returns). The libraries'
own bars (huggingface_hub, transformers' "Loading weights" and "Writing model shards", diffusers') follow the same
mode through `library_progress`: shown in bar mode only.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
MODES = ("auto", "bar", "log", "none")


def resolve_mode(mode: str | None = None, stream: TextIO | None = None) -> str:
    mode = mode or os.environ.get("CHEXBENCH_PROGRESS", "auto")
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "auto":
        stream = stream or sys.stderr
        disabled = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
        return "bar" if stream.isatty() and not disabled else "log"
    return mode


_HUB_SWITCH = "HF_HUB_DISABLE_PROGRESS_BARS"  # read by huggingface_hub, and by transformers when it is imported
_switched_here = False


def library_progress(mode: str | None = None) -> None:
    """Show the libraries' progress bars in bar mode only: set huggingface_hub's switch (transformers reads it at
    import) and turn off the bars of transformers and diffusers where they are already imported."""
    global _switched_here
    show = resolve_mode(mode) == "bar"
    if not show:
        _switched_here = _switched_here or _HUB_SWITCH not in os.environ
        os.environ[_HUB_SWITCH] = "1"
    elif _switched_here:
        os.environ.pop(_HUB_SWITCH, None)
        _switched_here = False
    else:
        return
    for name, switch in (
        ("huggingface_hub.utils", "progress_bars"),
        ("transformers.utils.logging", "progress_bar"),
        ("diffusers.utils.logging", "progress_bar"),
    ):
        if name.split(".")[0] in sys.modules:
            module = importlib.import_module(name)
            getattr(module, f"{'enable' if show else 'disable'}_{switch}")()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Count finished items; report them as a bar or as periodic log lines."""

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        *,
        mode: str | None = None,
        every_n: int | None = None,
        every_s: float = 30.0,
        stream: TextIO | None = None,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.every_n = every_n if every_n is not None else (max(1, total // 10) if total else 0)
        self.every_s = every_s
        self.count = 0
        self._start = self._last_time = time.monotonic()
        self._last_count = 0
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            now = time.monotonic()
            due_n = self.every_n and self.count - self._last_count >= self.every_n
            if due_n or now - self._last_time >= self.every_s:
                self._log(now)

    def _log(self, now: float) -> None:
        elapsed = now - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {_duration((self.total - self.count) / rate)}"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{stamp} {self.desc}: {done} {self.unit} ({rate:.2f} {self.unit}/s, elapsed {_duration(elapsed)}{eta})",
            file=self.stream,
            flush=True,
        )
        self._last_time, self._last_count = now, self.count

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.count != self._last_count:
            self._log(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it", **kw) -> Iterator[T]:
    """Iterate while reporting progress one item at a time."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit, **kw) as progress:
        for item in iterable:
            yield item
            progress.update()
