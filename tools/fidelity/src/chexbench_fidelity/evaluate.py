"""Compute every registered metric of one subset (all, or one pathology) for every extractor, as long-format rows."""

from __future__ import annotations

import logging
import zlib

import numpy as np
from chexbench_common.progress import Progress

from . import bootstrap
from .cache import StatsCache
from .groups import ALL, Catalogue, Group
from .inputs import FeatureSet
from .metric_registry import REGISTRY
from .registry import RADIOMICS, UNBOUNDED, Context, Row, Shortfall
from .settings import Settings

log = logging.getLogger(__name__)
__all__ = ["RADIOMICS", "Evaluator", "Row", "Shortfall", "check_counts", "select_rows"]


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
    """The registered metrics of groups against paired embeddings, with the real statistics cache."""

    def __init__(
        self,
        pairs: dict[str, tuple[FeatureSet, FeatureSet]],
        catalogue: Catalogue,
        settings: Settings,
        cache: StatsCache,
        logits: FeatureSet | None = None,
        logits_note: str | None = None,
        train: dict[str, FeatureSet] | None = None,
        prompt_samples: dict[str, tuple[FeatureSet, np.ndarray]] | None = None,
    ):
        self.pairs, self.catalogue, self.settings, self.cache = pairs, catalogue, settings, cache
        self.logits, self.logits_note = logits, logits_note
        self.train = train or {}  # the training images' embeddings by extractor (the data-copying test)
        self.prompt_samples = prompt_samples or {}  # several images per prompt and their prompts (per-prompt Vendi)
        self.per_image: list = []  # per-image frames of subset `all` (α-precision / β-recall)

    def group(self, group: Group, strict: bool) -> list[Row]:
        rows: list[Row] = []
        for real, synth in self.pairs.values():
            ri, si = select_rows(group, real, synth, self.settings)
            problems = check_counts(group, real, synth, self.settings, strict)
            ctx = Context(self, group, strict, real, synth, ri, si, problems)
            stand_in = real.meta.get("stand_in") or synth.meta.get("stand_in")
            for metric in REGISTRY:
                if metric.run_wide or not metric.applies(ctx):
                    continue
                found = ctx.unavailable(metric.rows_expected(ctx), *problems) if ctx.empty else metric.compute(ctx)
                for row in found if stand_in else ():
                    row.notes.append(f"STAND-IN {real.extractor} weights ({stand_in}): not informative")
                rows += found
        for metric in REGISTRY:
            if metric.run_wide:
                rows += metric.compute(Context(self, group, strict))
        return rows

    def bootstrap_ci(self, row: Row, ctx: Context, replicates, bounds=UNBOUNDED) -> None:
        """With --bootstrap: the row's centred percentile interval over prompt-bootstrap replicates of
        `replicates(x_real, x_synth, units, reps, seed, tick)`."""
        s = self.settings
        if not s.bootstrap or row.value is None:
            return
        units = self.units(ctx)
        with self.progress(s.bootstrap, f"{row.metric} bootstrap {ctx.extractor}/{ctx.group.name}") as progress:
            reps = replicates(ctx.x_real, ctx.x_synth, units, s.bootstrap, s.seed, progress.update)
        if len(reps) >= 2:
            row.ci_low, row.ci_high = bootstrap.centred_interval(row.value, reps, s.ci_level, bounds or UNBOUNDED)
            row.notes.append(f"{int(s.ci_level * 100)}% CI: {len(reps)} prompt-bootstrap replicates")

    def units(self, ctx: Context) -> bootstrap.Units:
        """The bootstrap unit (prompt, else image) of each row of the pair's selected rows."""
        return bootstrap.Units.from_labels(
            self.catalogue.unit(ctx.real)[ctx.ri], self.catalogue.unit(ctx.synth)[ctx.si], self.catalogue.paired
        )

    @staticmethod
    def progress(total: int, desc: str, unit: str = "replicates") -> Progress:
        """A bar on a terminal, else a line every 60 s and one at the end, for the whole set; pathology groups stay
        quiet."""
        quiet = not desc.endswith("/" + ALL)
        return Progress(total, desc, unit, every_n=10**9, every_s=60.0, mode="none" if quiet else None)
