"""The positive control read per strength: what each space caught, whether it found the copy's own source at rank 1,
its detection limit, and — when exact or mild copies slip through — the cause, named from the numbers.

Every space is read through one closeness statistic, smaller = closer: the DCR in an embedding space, 1 - score in
the re-ID space (its flag is score > threshold, i.e. 1 - score < 1 - threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .audit import rate_ci
from .ladder import COPIES_THAT_MUST_BE_CAUGHT, NAMES
from .memorisation import Instrument
from .provenance import REID

ANY = "any"  # every informative rule of every space


@dataclass(frozen=True)
class View:
    """One space's closeness statistic and flag on the controls and the holdout."""

    name: str
    statistic: str
    threshold: float
    threshold_source: str
    flag: str
    rank1: str | None
    column: str | None

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        if self.name == REID:
            return 1 - frame["reid_nn_score"].to_numpy(dtype=float)
        return frame[self.column].to_numpy(dtype=float)


def view(inst: Instrument) -> View:
    if inst.name == REID:
        th = inst.thresholds["reid"]
        return View(REID, "1 - re-ID score", 1 - th["value"], th["source"], "flag_reid", "rank1_reid", None)
    th = inst.thresholds["dcr"]
    return View(inst.name, "DCR", th["value"], th["source"], inst.flag, f"rank1_{inst.name}", f"dcr_{inst.name}")


def any_view() -> View:
    return View(ANY, "", float("nan"), "", "flag_any", None, None)


def ladder(per_image: pd.DataFrame, v: View, level: float) -> list[dict]:
    """Per strength: copies, caught (sensitivity, Wilson CI), found at rank 1 (Wilson CI), the statistic's range."""
    control = per_image[per_image["set"] == "control"]
    rows = []
    for strength in NAMES:
        part = control[control["strength"] == strength]
        n = len(part)
        if n == 0:
            continue
        caught = int(part[v.flag].sum())
        row = {"strength": strength, "n": n, "caught": caught, "sensitivity": caught / n}
        row["sensitivity_ci"] = rate_ci(caught, n, level)
        if v.rank1 is not None:
            found = int(part[v.rank1].sum())
            row |= {"rank1": found, "rank1_rate": found / n, "rank1_ci": rate_ci(found, n, level)}
            stat = v.values(part)
            row |= {"stat_min": float(stat.min()), "stat_median": float(np.median(stat)), "stat_max": float(stat.max())}
        rows.append(row)
    return rows


def detection_limit(rows: list[dict]) -> str | None:
    """The strongest strength up to which every copy was caught (from the weakest up); None if exact copies slip."""
    limit = None
    for row in rows:
        if row["caught"] < row["n"]:
            break
        limit = row["strength"]
    return limit


def describe_limit(rows: list[dict]) -> str:
    limit = detection_limit(rows)
    caught = ", ".join(f"{r['strength']} {r['caught']}/{r['n']}" for r in rows)
    head = f"every copy caught up to '{limit}'" if limit else "not every exact copy caught"
    return f"{head} ({caught})"


def diagnose(per_image: pd.DataFrame, v: View, dcr_quantile: float, disjointness: str) -> list[str]:
    """Why exact or mild copies slipped through in this space, from the numbers:

    - augmentation strength: the copy is not nearest its own source, or it is found there but farther from it than
      the median holdout image is from the pool (by distance it looks like a new image; no threshold separates it);
    - a holdout that overlaps the pool: a share of the holdout at least the threshold's quantile is as close to a
      training image as the exact copies are to their sources, so the quantile threshold lands below the copies;
    - the threshold: the copies are nearest their own source, nearer than most of the holdout, and the holdout has
      no such near-copies, yet their statistic is above the threshold.
    """
    control = per_image[per_image["set"] == "control"]
    holdout = v.values(per_image[per_image["set"] == "holdout"])
    exact = control[control["strength"] == "exact"]
    copy_scale = float(np.max(v.values(exact))) if len(exact) else float("nan")
    near = int((holdout <= copy_scale).sum()) if len(exact) else 0
    overlap = len(holdout) > 0 and near / len(holdout) >= dcr_quantile
    out = []
    for strength in COPIES_THAT_MUST_BE_CAUGHT:
        part = control[control["strength"] == strength]
        missed = part[~part[v.flag].to_numpy(dtype=bool)]
        if missed.empty:
            continue
        where = f"{v.name}: {len(missed)} of {len(part)} {strength} copies not caught"
        what = "only resized to the generator's resolution and saved in 8 bits" if strength == "exact" else strength
        lost = missed[~missed[v.rank1].to_numpy(dtype=bool)]
        if len(lost):
            out.append(
                f"{where}; cause: augmentation strength — {len(lost)} of them are not nearest their own source "
                f"(rank-1 recovery {int(part[v.rank1].sum())}/{len(part)}): a copy {what} already lands nearer "
                "another training image in this space"
            )
        found = missed[missed[v.rank1].to_numpy(dtype=bool)]
        if found.empty:
            continue
        stats = v.values(found)
        span = f"{v.statistic} {stats.min():.4g}–{stats.max():.4g}"
        cost = float((holdout <= stats.max()).mean()) if len(holdout) else float("nan")
        if overlap:
            out.append(
                f"{where}; cause: the holdout overlaps the training pool — {near} of {len(holdout)} holdout images "
                f"are as close to a training image as the exact copies are to their source ({v.statistic} <= "
                f"{copy_scale:.4g}), which pulls the threshold ({v.threshold:.4g}: {v.threshold_source}) below "
                f"the {len(found)} copies found at rank 1 ({span}); holdout {disjointness}: use a patient-disjoint "
                "holdout"
            )
        elif cost > 0.5:
            out.append(
                f"{where}; cause: augmentation strength — {len(found)} of them are nearest their own source but "
                f"farther from it ({span}) than {cost:.0%} of the holdout images are from the training pool: by "
                "distance they look like new images, and no threshold can separate them"
                + (
                    ""
                    if disjointness == "patient-disjoint"
                    else f" — unless the holdout holds other images of training patients (holdout {disjointness})"
                )
            )
        else:
            out.append(
                f"{where}; cause: the threshold — {len(found)} of them are nearest their own source ({span}) but "
                f"above the threshold {v.threshold:.4g} ({v.threshold_source}) while the holdout has no near-copies "
                f"({near} of {len(holdout)} as close as an exact copy); a threshold that caught them would flag "
                f"{cost:.0%} of the holdout"
            )
    return out
