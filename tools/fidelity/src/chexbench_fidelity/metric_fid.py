"""FID / FD (and FD∞): Fréchet distance of the two sets' Gaussians, on any embedding extractor."""

from __future__ import annotations

import numpy as np

from . import bootstrap
from .cache import stats_key
from .frechet import fd_infinity, fit_gaussian, frechet_distance, frechet_distance_low_rank, psd_sqrt
from .registry import Context, Metric, Row, suffix

LEADERBOARD_NAMES = {"dinov2": "FD_DINOv2"}  # dgm-eval's name for FD on DINOv2 ViT-L/14 features


def _real_stats(x: np.ndarray):
    g = fit_gaussian(x)
    return g, psd_sqrt(g.cov)


def compute(ctx: Context) -> list[Row]:
    s, name, n = ctx.settings, ctx.extractor, ctx.n
    x_real, x_synth = ctx.x_real, ctx.x_synth
    metrics = ["FID"] + (["FD_inf"] if s.fd_inf else [])
    if min(len(x_real), len(x_synth)) < 2:
        return ctx.unavailable(metrics, "fewer samples than FID needs (2 per set)")
    unstable = min(len(x_real), len(x_synth)) < ctx.real.dim

    def real_stats():
        return ctx.evaluator.cache.get(stats_key(ctx.real.sha256, name, ctx.ri), lambda: _real_stats(x_real))

    if unstable:  # the exact sample route costs O(n²d) here instead of O(d³); the same with or without FD_inf
        row = Row("FID", ctx.group.name, name, frechet_distance_low_rank(x_real, x_synth), **n)
    else:
        g_real, sqrt_real = real_stats()
        row = Row("FID", ctx.group.name, name, frechet_distance(g_real, fit_gaussian(x_synth), sqrt_real), **n)
    if unstable:
        row.notes.append(f"unstable: n < d (n_real={len(x_real)}, n_synth={len(x_synth)}, d={ctx.real.dim})")
    ctx.shared["FID"] = row  # MiFID divides it
    ctx.evaluator.bootstrap_ci(row, ctx, bootstrap.fid_replicates, (0.0, np.inf))
    out = [row]
    if s.fd_inf:
        try:
            fdi = fd_infinity(*real_stats(), x_synth, seed=s.seed)
            note = (
                f"fit over synthetic subsets n={fdi.sizes[0]}..{fdi.sizes[-1]} ({len(fdi.sizes)} sizes), "
                f"slope {fdi.slope:.6g}"
            )
            out.append(Row("FD_inf", ctx.group.name, name, fdi.value, **n, notes=[note]))
        except ValueError as exc:
            out.append(Row("FD_inf", ctx.group.name, name, None, **n, notes=[str(exc)]))
    return out


def column(row: Row, primary: str | None) -> str:
    if row.metric == "FD_inf":
        return f"FD-infinity{suffix(row.extractor)}"
    return LEADERBOARD_NAMES.get(row.extractor, "FID" + suffix(row.extractor))


METRIC = Metric(
    name="fid",
    outputs=("FID", "FD_inf"),
    outputs_for=lambda ctx: ("FID", "FD_inf") if ctx.settings.fd_inf else ("FID",),
    features="every embedding extractor (Inception: FID; RAD-DINO: FID (RadDino); DINOv2: FD_DINOv2; CLIP)",
    ci="prompt bootstrap (with replacement, weighted covariances), centred percentile; FD∞: none",
    reference="scipy.linalg.sqrtm FID, torchmetrics FID, closed-form Gaussians",
    measures="distance between the Gaussians fitted to real and synthetic features (FD∞: its N→∞ extrapolation)",
    compute=compute,
    column=column,
    lower_is_better=True,
)
