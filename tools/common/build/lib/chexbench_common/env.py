"""Cache and home directories, set before any heavy import reads them."""

from __future__ import annotations

import logging
import os
import sys
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
