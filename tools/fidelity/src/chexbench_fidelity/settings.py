"""The fidelity settings and their defaults (kept free of heavy imports: the CLI reads the defaults at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TILE = 2048  # tile edge of the P/R/D/C distance blocks


@dataclass(frozen=True)
class Settings:
    k: int = 5
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    seed: int = 0
    equal_n: bool = False
    fd_inf: bool = False
    bootstrap: int = 0
    ci_level: float = 0.95
    prdc_extractors: tuple[str, ...] = ()
    tile: int = DEFAULT_TILE
