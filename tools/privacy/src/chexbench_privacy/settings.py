"""The privacy run's parameters (recorded in the manifest; part of the skip key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    reid_preprocessing: str = "chexgenbench"  # or packhaeuser (reid.PREPROCESSING)
    pixel_size: int = 512  # common grey resolution of the pixel distance (the original compared at 512)
    top_k: int = 5  # nearest training images kept per image and re-scored by the re-ID head
    delta: float = 0.5  # CheXGenBench's "Count Re-ID > delta"
    dcr_quantile: float = 0.05  # DCR flag: below this quantile of the holdout's DCR
    nndr_max: float = 1 / 3  # NNDR flag: d1/d2 below this
    reid_quantile: float = 0.99  # re-ID flag: above this quantile of the holdout's nearest re-ID score
    # a space discriminates only if its holdout statistic spreads by at least this much; below it the space's rules
    # are reported as not informative and flag nothing. re-ID: the standard deviation of the holdout's best scores
    # (probability scale; a random network gives ~1e-6). Embedding spaces: the standard deviation of the holdout's
    # DCR relative to the training vectors' RMS magnitude (the FID Inception gives 0.055 even on the demo's 39 views
    # of one CT; the demo's random RAD-DINO 0.0017, and it finds no mild copy at rank 1)
    reid_spread_floor: float = 1e-3
    space_spread_floor: float = 1e-2
    bootstrap: int = 1000  # prompt-bootstrap replicates of the protocol means
    ci_level: float = 0.95
    seed: int = 42
    evidence_pairs: int = 16  # pairs on the contact sheet
    tile: int = 4096  # queries per batch of the exact nearest-neighbour search, tile edge of the self-search
