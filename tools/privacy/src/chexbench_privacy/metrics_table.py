"""The privacy stage's `metrics` table: the CheXGenBench protocol's summary rows, then the audit's rates per rule and
space, the control ladder per strength, and the spaces' own descriptors. A rule in a space that cannot discriminate
gets no value (null) and a note saying why."""

from __future__ import annotations

import pandas as pd
from chexbench_common.stats import cluster_bootstrap
from chexbench_schema.metrics import MetricRow, metrics_frame

from .audit import rate_ci
from .controls import ANY, any_view, describe_limit, detection_limit, ladder, view
from .ladder import NAMES
from .provenance import REID

STAGE = "privacy"


class Rows:
    """The stage's metric rows; every one counts the run's synthetic images unless it says otherwise."""

    def __init__(self, model: str, run_id: str, n_synth: int):
        self.model, self.run_id, self.n_synth, self.rows = model, run_id, n_synth, []

    def add(self, metric, value, space=None, ci=(None, None), n_real=None, n_synth=None, note=None, subset="all"):
        n_synth = self.n_synth if n_synth is None else n_synth
        self.rows.append(MetricRow(metric, value, subset, space, *ci, n_real=n_real, n_synth=n_synth, note=note))

    def frame(self) -> pd.DataFrame:
        return metrics_frame(self.rows, model=self.model, run_id=self.run_id, stage=STAGE)


def build(audit, prompts: pd.DataFrame, per_image: pd.DataFrame, model: str, run_id: str) -> pd.DataFrame:
    sets = {name: per_image[per_image["set"] == name] for name in ("synthetic", "holdout", "control")}
    rows = Rows(model, run_id, len(sets["synthetic"]))
    _protocol(rows, audit, prompts, sets["synthetic"])
    _rates(rows, audit, sets)
    _ladder(rows, audit, per_image)
    _patients(rows, audit, sets["synthetic"])
    _space_descriptors(rows, audit, sets)
    return rows.frame()


def _protocol(rows: Rows, audit, prompts: pd.DataFrame, synth: pd.DataFrame) -> None:
    s, n_prompts = audit.settings, len(prompts)
    reid = audit.instruments[REID]
    mute = "" if reid.informative else f"; {reid.not_informative()}"
    boot = {"replicates": s.bootstrap, "level": s.ci_level, "seed": s.seed}
    protocol = "CheXGenBench protocol: each generation vs its prompt's training image; mean over prompts"
    for metric, column, space in (
        ("reid_mean", "Mean_reid_scores", REID),
        ("reid_max_mean", "Max_reid_scores", REID),
        ("pixel_distance_mean", "Mean_pixel_distance", "pixel"),
        ("latent_distance_mean", "Mean_latent_distance", audit.primary),
    ):
        values = prompts[column].to_numpy(dtype=float)
        ci = cluster_bootstrap(values, s.bootstrap, s.ci_level, s.seed) if s.bootstrap else (None, None)
        note = f"{protocol}; prompt bootstrap {boot}" + (mute if space == REID else "")
        rows.add(metric, values.mean(), space, ci, n_prompts, note=note)
    rows.add(
        "reid_max",
        synth["reid_source"].max(),
        REID,
        n_real=n_prompts,
        note="largest re-ID score of any generation vs its source" + mute,
    )
    if reid.informative:
        above = int((prompts["Mean_reid_scores"] > s.delta).sum())
        count_ci = tuple(n_prompts * c for c in rate_ci(above, n_prompts, s.ci_level))
        images_above = int((synth["reid_source"] > s.delta).sum())
    else:  # a count of decisions made on float noise is not reported
        above, count_ci, images_above = None, (None, None), None
    rows.add(
        "reid_count_gt_delta",
        above,
        REID,
        count_ci,
        n_prompts,
        note=f"prompts whose mean re-ID over their generations exceeds delta={s.delta} (Wilson CI of the share, "
        "times the prompts; the original's unit is not in its code)" + mute,
    )
    rows.add(
        "reid_images_gt_delta",
        images_above,
        REID,
        n_real=n_prompts,
        note=f"generations with re-ID > delta={s.delta}" + mute,
    )


def _rule_columns(audit) -> list[tuple[str, str | None, str, object]]:
    """(rule, space, flag column, instrument or None) of every rule, every space's union and the overall union."""
    out = []
    for e in audit.extractors:
        inst = audit.instruments[e]
        out += [("dcr", e, f"flag_dcr_{e}", inst), ("nndr", e, f"flag_nndr_{e}", inst), (ANY, e, inst.flag, inst)]
    out.append(("reid", REID, "flag_reid", audit.instruments[REID]))
    out.append((ANY, None, "flag_any", None))
    return out


def _live(audit, inst) -> tuple[bool, str]:
    """Whether a rule can flag anything, and the note when it cannot."""
    if inst is not None:
        return inst.informative, "" if inst.informative else inst.not_informative()
    live = any(i.informative for i in audit.instruments.values())
    return live, "" if live else "no space of the audit is informative: nothing can be flagged"


def _rule_note(audit, rule: str, space: str | None) -> str:
    if rule == ANY:
        return f"union of the informative rules of {space or 'every space'}"
    key = rule if space == REID else f"{rule}/{space}"
    return f"{key}: {audit.instruments[space].thresholds[rule]['source']}"


def _rates(rows: Rows, audit, sets: dict) -> None:
    s, n_train = audit.settings, len(audit.plan.train)
    synth, held = sets["synthetic"], audit.results["holdout_crossfit"]
    for rule, space, column, inst in _rule_columns(audit):
        live, mute = _live(audit, inst)
        k, n = int(synth[column].sum()), len(synth)
        rows.add(
            f"flag_rate_{rule}",
            k / n if live else None,
            space,
            rate_ci(k, n, s.ci_level) if live else (None, None),
            n_train,
            note=f"fraction of generations flagged (Wilson CI); {_rule_note(audit, rule, space)}"
            + (f"; {mute}" if mute else ""),
        )
        if column in held:
            spec_k, spec_n = int((~held[column]).sum()), len(held[column])
            rows.add(
                f"holdout_specificity_{rule}",
                spec_k / spec_n if live else None,
                space,
                rate_ci(spec_k, spec_n, s.ci_level) if live else (None, None),
                n_train,
                spec_n,
                note="holdout images not flagged, thresholds fitted on the other half (2-fold; Wilson CI)"
                + (f"; {mute}" if mute else ""),
            )


def _ladder(rows: Rows, audit, per_image: pd.DataFrame) -> None:
    """Per strength and space: sensitivity of each rule and of the space's union, rank-1 source recovery, and the
    detection limit (the strongest strength up to which every copy was caught)."""
    s, n_train = audit.settings, len(audit.plan.train)
    control = per_image[per_image["set"] == "control"]
    for rule, space, column, inst in _rule_columns(audit):
        live, mute = _live(audit, inst)
        for strength in NAMES:
            part = control[control["strength"] == strength]
            if part.empty:
                continue
            k, n = int(part[column].sum()), len(part)
            rows.add(
                f"control_sensitivity_{rule}",
                k / n if live else None,
                space,
                rate_ci(k, n, s.ci_level) if live else (None, None),
                n_train,
                n,
                subset=strength,
                note=f"{strength} copies of training images flagged (Wilson CI)" + (f"; {mute}" if mute else ""),
            )
    views = [view(audit.instruments[name]) for name in [*audit.extractors, REID]]
    for v in views:
        _, mute = _live(audit, audit.instruments[v.name])
        for row in ladder(per_image, v, s.ci_level):
            rows.add(
                "control_source_rank1",
                row["rank1_rate"],
                v.name,
                row["rank1_ci"],
                n_train,
                row["n"],
                subset=row["strength"],
                note=f"{row['strength']} copies whose nearest training image is their own source (Wilson CI); "
                f"{v.statistic} of the copies {row['stat_min']:.4g}..{row['stat_max']:.4g} "
                f"(median {row['stat_median']:.4g}), threshold {v.threshold:.4g}" + (f"; {mute}" if mute else ""),
            )
    for v, inst in [*((v, audit.instruments[v.name]) for v in views), (any_view(), None)]:
        live, mute = _live(audit, inst)
        steps = ladder(per_image, v, s.ci_level)
        limit = detection_limit(steps)
        rows.add(
            "control_detection_limit",
            (NAMES.index(limit) + 1 if limit else 0) if live else None,
            None if v.name == ANY else v.name,
            n_real=n_train,
            n_synth=len(control),
            note=(
                f"strengths fully caught from the weakest up, of {', '.join(NAMES)}: {describe_limit(steps)}"
                if live
                else mute
            ),
        )


def _patients(rows: Rows, audit, synth: pd.DataFrame) -> None:
    s = audit.settings
    flagged: set = set()
    for e in audit.extractors:
        flagged |= set(synth.loc[synth[f"flag_{e}"].to_numpy(dtype=bool), f"nn_patient_{e}"])
    flagged |= set(synth.loc[synth["flag_reid"].to_numpy(dtype=bool), "reid_nn_patient"])
    n_patients = int(audit.plan.train["patient"].nunique())
    live, mute = _live(audit, None)
    rows.add(
        "patients_flagged",
        len(flagged) if live else None,
        None,
        n_real=n_patients,
        note="distinct training patients matched, in the space that flagged it, by a flagged generation"
        + (f"; {mute}" if mute else ""),
    )
    rows.add(
        "patients_flagged_rate",
        len(flagged) / n_patients if live else None,
        None,
        rate_ci(len(flagged), n_patients, s.ci_level) if live else (None, None),
        n_patients,
        note="fraction of training patients with >= 1 flagged generation (Wilson CI)" + (f"; {mute}" if mute else ""),
    )


def _space_descriptors(rows: Rows, audit, sets: dict) -> None:
    s, n_train = audit.settings, len(audit.plan.train)
    for name, inst in audit.instruments.items():
        rows.add(
            "space_informative",
            float(inst.informative),
            name,
            n_real=n_train,
            n_synth=len(sets["holdout"]),
            note=f"{inst.spread_what} = {inst.spread:.3g}, floor {inst.floor:g}; weights: {inst.weights.label} "
            f"({inst.weights.evidence})",
        )
        rows.add(
            "space_real_weights",
            {"real": 1.0, "stand-in": 0.0}.get(inst.weights.status),
            name,
            note=f"{inst.weights.status}: {inst.weights.evidence}",
        )
    for e in audit.extractors:
        inst = audit.instruments[e]
        mute = "" if inst.informative else f"; {inst.not_informative()}"
        synth_dcr, hold_dcr = sets["synthetic"][f"dcr_{e}"], sets["holdout"][f"dcr_{e}"]
        rows.add("dcr_median", synth_dcr.median(), e, n_real=n_train, note="median DCR of the generations" + mute)
        rows.add(
            "dcr_median_holdout",
            hold_dcr.median(),
            e,
            n_real=n_train,
            n_synth=len(hold_dcr),
            note="median DCR of the holdout" + mute,
        )
        ratio = synth_dcr.median() / hold_dcr.median() if hold_dcr.median() > 0 else None
        rows.add(
            "dcr_median_ratio",
            ratio if inst.informative else None,
            e,
            n_real=n_train,
            note="median DCR synthetic / holdout; << 1 = copies" + mute,
        )
        auth = sets["synthetic"][f"authentic_{e}"].dropna().astype(bool)
        rows.add(
            "authenticity",
            auth.mean() if len(auth) else None,
            e,
            rate_ci(int(auth.sum()), len(auth), s.ci_level) if len(auth) else (None, None),
            n_train,
            note="Alaa et al. 2022 authenticity (fraction of generations authentic; Wilson CI)" + mute,
        )
        rows.add(
            "mia_auroc",
            audit.results["mia_auroc"][e],
            e,
            n_real=n_train + len(sets["holdout"]),
            note="distance-based membership inference, training vs holdout; 0.5 = no leakage" + mute,
        )


def ladder_summary(audit, per_image: pd.DataFrame) -> dict:
    """The control ladder of every space, for the manifest and the log."""
    out = {}
    for name in [*audit.extractors, REID, ANY]:
        v = any_view() if name == ANY else view(audit.instruments[name])
        steps = ladder(per_image, v, audit.settings.ci_level)
        out[name] = {
            "detection_limit": detection_limit(steps),
            "strengths": [
                {k: (list(val) if isinstance(val, tuple) else val) for k, val in step.items()} for step in steps
            ],
        }
    return out
