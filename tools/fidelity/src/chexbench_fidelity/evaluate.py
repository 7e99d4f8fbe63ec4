"""Compute every metric of one subset (all, or one pathology) for every extractor, as long-format rows."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_common.progress import Progress

from . import bootstrap
from .alpha_beta import STEPS, alpha_beta
from .cache import StatsCache, stats_key
from .frd import frechet_radiomics_distance
from .frechet import fd_infinity, fit_gaussian, frechet_distance, frechet_distance_low_rank, psd_sqrt
from .groups import ALL, Catalogue, Group
from .inception_score import inception_score
from .inputs import FeatureSet
from .kid import KID, kernel_inception_distance
from .manifold import PRDC, compute_prdc, compute_prdc_kid, pass_tiles
from .settings import Settings

log = logging.getLogger(__name__)
UNBOUNDED = (-np.inf, np.inf)
RADIOMICS = "radiomics"  # the extractor whose features get FRD instead of FID/KID/P/R/D/C
PRDC_METRICS = ("precision", "recall", "density", "coverage")
ALPHA_BETA_METRICS = ("alpha_precision", "beta_recall")


@dataclass
class Row:
    metric: str
    subset: str
    extractor: str | None
    value: float | None
    n_real: int | None = None
    n_synth: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None


class Shortfall(BadInputError):
    """Fewer samples than a metric needs (an error for `all` or a requested pathology, a note otherwise)."""


def _group_rng(seed: int, group: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(group.encode()), zlib.crc32(purpose.encode())])


def select_rows(group: Group, real: FeatureSet, synth: FeatureSet, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the group in both tables, subsampled (seeded) to equal N when asked."""
    ri, si = group.rows(real), group.rows(synth)
    if settings.equal_n and len(ri) != len(si):
        rng = _group_rng(settings.seed, group.name, "equal-n")
        n = min(len(ri), len(si))
        ri, si = (
            np.sort(rng.choice(ri, n, replace=False)) if len(ri) > n else ri,
            np.sort(rng.choice(si, n, replace=False)) if len(si) > n else si,
        )
    return ri, si


def check_counts(group: Group, real: FeatureSet, synth: FeatureSet, settings: Settings, strict: bool) -> list[str]:
    """Shortfalls of this group for this extractor; raises the first one when `strict`."""
    ri, si = select_rows(group, real, synth, settings)
    where = f"{real.extractor} embeddings" + ("" if group.name == "all" else f", pathology {group.name!r}")
    problems = []
    if len(ri) == 0 or len(si) == 0:
        problems.append(
            f"empty group: {len(ri)} real and {len(si)} synthetic samples ({where}; real images need "
            "label == 1, synthetic images inherit their prompt's labels)"
        )
    else:
        if min(len(ri), len(si)) < 2:
            what = "FRD needs" if real.extractor == RADIOMICS else "FID and KID need"
            problems.append(f"fewer samples than {what} (2 per set): {len(ri)} real, {len(si)} synthetic ({where})")
        if real.extractor in settings.prdc_extractors and min(len(ri), len(si)) <= settings.k:
            problems.append(
                f"fewer samples than precision/recall/density/coverage need (more than k={settings.k} per "
                f"set): {len(ri)} real, {len(si)} synthetic ({where})"
            )
    if strict and problems:
        raise Shortfall(problems[0])
    return problems


class Evaluator:
    """Metrics of groups against paired embeddings, with the real statistics cache."""

    def __init__(
        self,
        pairs: dict[str, tuple[FeatureSet, FeatureSet]],
        catalogue: Catalogue,
        settings: Settings,
        cache: StatsCache,
        logits: FeatureSet | None = None,
        logits_note: str | None = None,
    ):
        self.pairs, self.catalogue, self.settings, self.cache = pairs, catalogue, settings, cache
        self.logits, self.logits_note = logits, logits_note
        self.per_image: list[pd.DataFrame] = []  # α-precision / β-recall per image, subset `all`

    def group(self, group: Group, strict: bool) -> list[Row]:
        rows: list[Row] = []
        for real, synth in self.pairs.values():
            rows += self._extractor(group, real, synth, strict)
        rows += self._inception_score(group, strict)
        return rows

    def _extractor(self, group: Group, real: FeatureSet, synth: FeatureSet, strict: bool) -> list[Row]:
        s, name = self.settings, real.extractor
        if name == RADIOMICS:
            return self._frd(group, real, synth, strict)
        problems = check_counts(group, real, synth, s, strict)
        ri, si = select_rows(group, real, synth, s)
        n = {"n_real": len(ri), "n_synth": len(si)}
        metrics = (
            ["FID", "KID", "KID_std"]
            + (["FD_inf"] if s.fd_inf else [])
            + (list(PRDC_METRICS) + list(ALPHA_BETA_METRICS) if name in s.prdc_extractors else [])
        )
        if len(ri) == 0 or len(si) == 0:
            return [Row(m, group.name, name, None, **n, notes=list(problems)) for m in metrics]
        x_real, x_synth = real.vectors[ri], synth.vectors[si]
        fused: tuple[PRDC, KID] | None = None
        if name in s.prdc_extractors and min(len(ri), len(si)) > max(s.k, 1):
            # one pass over the distance tiles gives P/R/D/C and KID's kernel sums (same subsets as standalone KID)
            tiles = pass_tiles(len(ri), len(si), s.tile)
            with _progress(tiles, f"P/R/D/C + KID {name}/{group.name}", "tiles") as progress:
                fused = compute_prdc_kid(
                    x_real,
                    x_synth,
                    s.k,
                    tile=s.tile,
                    subsets=s.kid_subsets,
                    subset_size=s.kid_subset_size,
                    seed=s.seed,
                    on_tile_done=progress.update,
                )
        out = self._fid(group, real, ri, x_real, x_synth, n)
        out += self._kid(group, name, x_real, x_synth, n, fused[1] if fused else None)
        if name in s.prdc_extractors:
            out += self._prdc(group, name, real, synth, ri, si, n, fused[0] if fused else None)
            out += self._alpha_beta(group, name, real, synth, ri, si, n)
        return out

    def _fid(self, group: Group, real: FeatureSet, ri: np.ndarray, x_real, x_synth, n: dict) -> list[Row]:
        s, name = self.settings, real.extractor
        metrics = ["FID"] + (["FD_inf"] if s.fd_inf else [])
        if min(len(x_real), len(x_synth)) < 2:
            return [
                Row(m, group.name, name, None, **n, notes=["fewer samples than FID needs (2 per set)"]) for m in metrics
            ]
        unstable = min(len(x_real), len(x_synth)) < real.dim

        def real_stats():
            return self.cache.get(stats_key(real.sha256, name, ri), lambda: _real_stats(x_real))

        if unstable:  # the exact sample route costs O(n²d) here instead of O(d³); the same with or without FD_inf
            row = Row("FID", group.name, name, frechet_distance_low_rank(x_real, x_synth), **n)
        else:
            g_real, sqrt_real = real_stats()
            row = Row("FID", group.name, name, frechet_distance(g_real, fit_gaussian(x_synth), sqrt_real), **n)
        if unstable:
            row.notes.append(f"unstable: n < d (n_real={len(x_real)}, n_synth={len(x_synth)}, d={real.dim})")
        self._bootstrap_ci(row, group, real, ri, x_real, x_synth, bootstrap.fid_replicates, (0.0, np.inf))
        out = [row]
        if s.fd_inf:
            try:
                fdi = fd_infinity(*real_stats(), x_synth, seed=s.seed)
                out.append(
                    Row(
                        "FD_inf",
                        group.name,
                        name,
                        fdi.value,
                        **n,
                        notes=[
                            f"fit over synthetic subsets n={fdi.sizes[0]}..{fdi.sizes[-1]} ({len(fdi.sizes)} sizes), "
                            f"slope {fdi.slope:.6g}"
                        ],
                    )
                )
            except ValueError as exc:
                out.append(Row("FD_inf", group.name, name, None, **n, notes=[str(exc)]))
        return out

    def _frd(self, group: Group, real: FeatureSet, synth: FeatureSet, strict: bool) -> list[Row]:
        """FRD on radiomics features: ln FD of the z-scored features (frd.py), with a prompt-bootstrap CI."""
        s = self.settings
        problems = check_counts(group, real, synth, s, strict)
        ri, si = select_rows(group, real, synth, s)
        n = {"n_real": len(ri), "n_synth": len(si)}
        if problems:
            return [Row("FRD", group.name, RADIOMICS, None, **n, notes=list(problems))]
        x_real, x_synth = real.vectors[ri], synth.vectors[si]
        try:
            value, used, note = frechet_radiomics_distance(x_real, x_synth)
        except ValueError as exc:
            return [Row("FRD", group.name, RADIOMICS, None, **n, notes=[str(exc)])]
        row = Row("FRD", group.name, RADIOMICS, value, **n, notes=[f"{used} features"] + ([note] if note else []))
        if min(len(ri), len(si)) < used:
            row.notes.append(f"unstable: n < d (n_real={len(ri)}, n_synth={len(si)}, d={used})")
        self._bootstrap_ci(row, group, real, ri, x_real, x_synth, bootstrap.frd_replicates)
        return [row]

    def _bootstrap_ci(
        self, row: Row, group: Group, real: FeatureSet, ri, x_real, x_synth, replicates, bounds=UNBOUNDED
    ):
        """With --bootstrap: the row's centred percentile interval over prompt-bootstrap replicates."""
        s = self.settings
        if not s.bootstrap:
            return
        units = self._units(group, real, ri, x_synth)
        with _progress(s.bootstrap, f"{row.metric} bootstrap {real.extractor}/{group.name}") as progress:
            reps = replicates(x_real, x_synth, units, s.bootstrap, s.seed, progress.update)
        if len(reps) >= 2:
            row.ci_low, row.ci_high = bootstrap.centred_interval(
                row.value, reps, s.ci_level, bounds or (-np.inf, np.inf)
            )
            row.notes.append(f"{int(s.ci_level * 100)}% CI: {len(reps)} prompt-bootstrap replicates")

    def _units(self, group: Group, real: FeatureSet, ri: np.ndarray, x_synth) -> bootstrap.Units:
        synth = self.pairs[real.extractor][1]
        _, si = select_rows(group, real, synth, self.settings)
        return bootstrap.Units.from_labels(
            self.catalogue.unit(real)[ri], self.catalogue.unit(synth)[si], self.catalogue.paired
        )

    def _kid(self, group: Group, name: str, x_real, x_synth, n: dict, kid: KID | None = None) -> list[Row]:
        s = self.settings
        if min(len(x_real), len(x_synth)) < 2:
            note = ["fewer samples than KID needs (2 per set)"]
            return [
                Row("KID", group.name, name, None, **n, notes=note),
                Row("KID_std", group.name, name, None, **n, notes=note),
            ]
        if kid is None:
            kid = kernel_inception_distance(
                x_real, x_synth, subsets=s.kid_subsets, subset_size=s.kid_subset_size, seed=s.seed
            )
        note = [f"{s.kid_subsets} subsets of {kid.subset_size}"]
        if kid.subset_size < s.kid_subset_size:
            note.append(f"subset size {kid.subset_size} < {s.kid_subset_size} (group smaller than a subset)")
        std, std_note = kid.std, list(note)
        if max(len(x_real), len(x_synth)) <= s.kid_subset_size:  # every subset is the whole of both sets
            std = None
            std_note.append(
                f"KID std unavailable: both sets ({len(x_real)} real, {len(x_synth)} synthetic) fit in one subset of "
                f"{s.kid_subset_size}, so every subset is the whole set and the spread measures nothing"
            )
        return [
            Row("KID", group.name, name, kid.mean, **n, notes=list(note)),
            Row("KID_std", group.name, name, std, **n, notes=std_note),
        ]

    def _prdc(
        self, group: Group, name: str, real: FeatureSet, synth: FeatureSet, ri, si, n: dict, done: PRDC | None = None
    ) -> list[Row]:
        s = self.settings
        x_real, x_synth = real.vectors[ri], synth.vectors[si]
        if min(len(ri), len(si)) <= s.k:
            note = [f"fewer samples than precision/recall/density/coverage need (more than k={s.k} per set)"]
            return [Row(m, group.name, name, None, **n, notes=list(note)) for m in PRDC_METRICS]
        result = (done if done is not None else compute_prdc(x_real, x_synth, s.k, tile=s.tile)).as_dict()
        rows = [Row(m, group.name, name, result[m], **n, notes=[f"k={s.k}"]) for m in PRDC_METRICS]
        if s.bootstrap:
            units = self._units(group, real, ri, x_synth)
            with _progress(s.bootstrap, f"P/R/D/C half-samples {name}/{group.name}") as progress:
                reps = bootstrap.prdc_replicates(
                    x_real, x_synth, units, s.bootstrap, s.seed, s.k, s.tile, progress.update
                )
            for row in rows:
                if len(reps[row.metric]) >= 2:
                    bounds = (0.0, np.inf if row.metric == "density" else 1.0)
                    row.ci_low, row.ci_high = bootstrap.centred_interval(
                        row.value, reps[row.metric], s.ci_level, bounds
                    )
                    row.notes.append(f"{int(s.ci_level * 100)}% CI: {len(reps[row.metric])} prompt half-samples")
        return rows

    def _alpha_beta(self, group: Group, name: str, real: FeatureSet, synth: FeatureSet, ri, si, n: dict) -> list[Row]:
        if len(ri) < 2 or len(si) < 1:
            note = ["α-precision/β-recall need at least 2 real and 1 synthetic image"]
            return [Row(m, group.name, name, None, **n, notes=list(note)) for m in ALPHA_BETA_METRICS]
        result = alpha_beta(real.vectors[ri], synth.vectors[si])
        note = f"Alaa et al. 2022, embedding space (no one-class net), centre = real mean, {STEPS} α steps; 1 = ideal"
        if group.name == ALL:
            self.per_image += [
                pd.DataFrame(
                    {
                        "extractor": name,
                        "set": "synthetic",
                        "image_id": synth.ids[si],
                        "alpha_level": result.synth_alpha_level,
                    }
                ),
                pd.DataFrame(
                    {
                        "extractor": name,
                        "set": "real",
                        "image_id": real.ids[ri],
                        "covered": result.real_covered,
                        "nearest_synthetic": synth.ids[si][result.real_nn_synth],
                    }
                ),
            ]
        return [
            Row("alpha_precision", group.name, name, result.alpha_precision, **n, notes=[note]),
            Row("beta_recall", group.name, name, result.beta_recall, **n, notes=[note]),
        ]

    def _inception_score(self, group: Group, strict: bool) -> list[Row]:
        s = self.settings
        if self.logits is None:
            return [
                Row(m, group.name, "inception-logits", None, notes=[self.logits_note or "no logits"])
                for m in ("IS", "IS_std")
            ]
        si = group.rows(self.logits)
        n = {"n_real": None, "n_synth": len(si)}
        if len(si) < s.is_splits:
            message = f"fewer samples than the Inception Score needs ({s.is_splits} splits): {len(si)} synthetic"
            if strict:
                raise Shortfall(f"{message} ({self.logits.path})")
            return [Row(m, group.name, self.logits.extractor, None, **n, notes=[message]) for m in ("IS", "IS_std")]
        score = inception_score(self.logits.vectors[si], splits=s.is_splits, seed=s.seed)
        note = [f"{s.is_splits} splits, std ddof 0"]
        return [
            Row("IS", group.name, self.logits.extractor, score.mean, **n, notes=list(note)),
            Row("IS_std", group.name, self.logits.extractor, score.std, **n, notes=list(note)),
        ]


def _progress(total: int, desc: str, unit: str = "replicates") -> Progress:
    """A bar on a terminal, else a line every 60 s and one at the end, for the whole set; pathology groups stay
    quiet."""
    quiet = not desc.endswith("/" + ALL)
    return Progress(total, desc, unit, every_n=10**9, every_s=60.0, mode="none" if quiet else None)


def _real_stats(x: np.ndarray):
    g = fit_gaussian(x)
    return g, psd_sqrt(g.cov)
