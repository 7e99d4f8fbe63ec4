"""Flag rules of the audit and their calibration on a real holdout (the null distribution of 'not a copy')."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest


def nndr(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Nearest-neighbour distance ratio d1/d2 (0 where d1 is 0: an exact copy is the most suspicious case)."""
    d1, d2 = np.asarray(d1, dtype=float), np.asarray(d2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d1 == 0, 0.0, d1 / d2)
    return ratio


@dataclass(frozen=True)
class Thresholds:
    """Flag when DCR < dcr, NNDR < nndr or re-ID score > reid; `sources` says where each value came from."""

    dcr: float
    nndr: float
    reid: float
    sources: dict = field(default_factory=dict)


def calibrate(
    holdout_dcr: np.ndarray,
    holdout_reid: np.ndarray | None = None,
    *,
    dcr_quantile: float,
    nndr_max: float,
    reid_quantile: float,
) -> Thresholds:
    """Thresholds from holdout images (real, never trained on): a DCR quantile, a fixed NNDR bound, a re-ID quantile."""
    holdout_dcr = np.asarray(holdout_dcr, dtype=float)
    if holdout_dcr.size == 0:
        raise ValueError("the holdout is empty: thresholds cannot be calibrated without real non-training images")
    n = holdout_dcr.size
    dcr = float(np.quantile(holdout_dcr, dcr_quantile))
    sources = {
        "dcr": f"{dcr_quantile:g} quantile of the holdout's DCR to the training pool (n={n})",
        "nndr": f"fixed bound {nndr_max:.4g}",
    }
    if holdout_reid is None or np.asarray(holdout_reid).size == 0:
        reid = math.inf
        sources["reid"] = "no holdout re-ID scores: re-ID rule disabled"
    else:
        reid = float(np.quantile(np.asarray(holdout_reid, dtype=float), reid_quantile))
        sources["reid"] = (
            f"{reid_quantile:g} quantile of the holdout's best re-ID score against the training pool (n={n})"
        )
    return Thresholds(dcr=dcr, nndr=float(nndr_max), reid=reid, sources=sources)


def flags(dcr: np.ndarray, nndr_values: np.ndarray, reid: np.ndarray, th: Thresholds) -> dict[str, np.ndarray]:
    """Boolean flags per rule and their union ('any'); NaN never flags."""
    out = {
        "dcr": np.asarray(dcr, dtype=float) < th.dcr,
        "nndr": np.asarray(nndr_values, dtype=float) < th.nndr,
        "reid": np.asarray(reid, dtype=float) > th.reid,
    }
    out["any"] = out["dcr"] | out["nndr"] | out["reid"]
    return out


def rate_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN, NaN when n is 0)."""
    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))
