"""Cache and home directories, set before any heavy import reads them."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

_HEAVY_MODULES = ("torch", "transformers", "diffusers", "huggingface_hub")


def configure_caches(cache_dir: str | Path | None = None) -> Path:
    """Point HF_HOME, TORCH_HOME, XDG_CACHE_HOME and MPLCONFIGDIR under one cache folder unless already set.

    The folder is `cache_dir`, else $CHEXBENCH_CACHE_DIR, else ~/.cache/chexbench. HF_HUB_OFFLINE is left as the
    user set it (it is honoured by huggingface_hub itself); call this before importing torch or transformers.
    """
    root = Path(cache_dir or os.environ.get("CHEXBENCH_CACHE_DIR") or Path.home() / ".cache" / "chexbench")
    root.mkdir(parents=True, exist_ok=True)
    imported = [m for m in _HEAVY_MODULES if m in sys.modules]
    if imported:
        log.debug("cache variables set after %s was imported; it may keep its defaults", ", ".join(imported))
    for var, sub in (
        ("HF_HOME", "huggingface"),
        ("TORCH_HOME", "torch"),
        ("XDG_CACHE_HOME", "xdg"),
        ("MPLCONFIGDIR", "matplotlib"),
    ):
        os.environ.setdefault(var, str(root / sub))
    return root


def offline() -> bool:
    """Whether the Hugging Face hub must not be contacted."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def quiet_library_warnings() -> None:
    """Hide the deprecation warnings a library raises about its own calls, which no code of ours can avoid: peft
    reads transformers' deprecated `is_gradient_checkpointing` property whenever it wraps a model. Our own calls use
    the current names, so a warning about one of them still shows."""
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
