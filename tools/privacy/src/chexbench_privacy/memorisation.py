"""The calibrated nearest-neighbour audit: search every set against the whole training pool in both spaces,
calibrate the flag thresholds on the holdout, check them on the positive control, and tabulate."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from chexbench_common.progress import Progress
from chexbench_common.stats import cluster_bootstrap
from sklearn.metrics import roc_auc_score

from .audit import Thresholds, calibrate, flags, nndr, rate_ci
from .neighbours import exact_topk
from .protocol import latent_distance

SETS = ("synthetic", "holdout", "control")
RULES = ("dcr", "nndr", "reid", "any")
STAGE = "privacy"


class Audit:
    def __init__(self, plan, encoder, settings, extractor: str):
        self.plan, self.encoder, self.settings, self.extractor = plan, encoder, settings, extractor
        self.thresholds: Thresholds | None = None
        self.results: dict = {}

    # ------------------------------------------------------------------ search
    def _topk(self, query: np.ndarray, base: np.ndarray, what: str, k: int | None = None):
        k = min(k or self.settings.top_k, len(base))
        n_tiles = math.ceil(len(query) / self.settings.tile) * math.ceil(len(base) / self.settings.tile)
        with Progress(total=n_tiles, desc=f"nearest neighbours: {what}", unit="tile") as bar:
            return exact_topk(query, base, k, tile=self.settings.tile, on_tile=lambda done, total: bar.update(1))

    def run(self) -> pd.DataFrame:
        plan, enc = self.plan, self.encoder
        train = plan.train
        tables = {"synthetic": plan.synth, "holdout": plan.holdout, "control": plan.control}
        ids = {
            "synthetic": plan.synth["image_id"],
            "holdout": plan.holdout["prompt_id"],
            "control": plan.control["image_id"],
        }
        latent = {"train": plan.spaces["train"].take(train["prompt_id"], "training images")}
        latent |= {
            "synthetic": plan.spaces["synth"].take(ids["synthetic"], "synthetic images"),
            "holdout": plan.spaces["holdout"].take(ids["holdout"], "holdout images"),
            "control": plan.spaces["control"].take(ids["control"], "positive-control images"),
        }
        scale = 1 / math.sqrt(latent["train"].shape[1])
        reid = {"train": enc.encode(list(train["file"]), "training pool")}
        for name in SETS:
            identity = _digest(tables[name]["sha256"]) if "sha256" in tables[name] else ""
            reid[name] = enc.encode(list(tables[name]["file"]), name, identity)
        frames = {}
        for name in SETS:
            d_lat, i_lat = self._topk(latent[name], latent["train"], f"{name} -> training pool ({self.extractor})")
            d_lat = d_lat * scale
            d_re, i_re = self._topk(reid[name], reid["train"], f"{name} -> training pool (re-ID)")
            k = i_re.shape[1]
            rescored = enc.scores(np.repeat(reid[name], k, axis=0), reid["train"][i_re.ravel()]).reshape(-1, k)
            best = rescored.argmax(axis=1)
            second = d_lat[:, 1] if d_lat.shape[1] > 1 else np.full(len(d_lat), np.nan)
            frame = pd.DataFrame(
                {
                    "set": name,
                    "image_id": ids[name].to_numpy(),
                    "prompt_id": tables[name]["prompt_id"].to_numpy(),
                    "latent_nn_prompt_id": train["prompt_id"].to_numpy()[i_lat[:, 0]],
                    "latent_nn_patient": train["patient"].to_numpy()[i_lat[:, 0]],
                    "dcr": d_lat[:, 0],
                    "d2": second,
                    "nndr": nndr(d_lat[:, 0], second),
                    "reid_nn_prompt_id": train["prompt_id"].to_numpy()[i_re[np.arange(len(best)), best]],
                    "reid_nn_patient": train["patient"].to_numpy()[i_re[np.arange(len(best)), best]],
                    "reid_nn_score": rescored[np.arange(len(best)), best],
                }
            )
            if name != "holdout":  # generations and controls also meet the training image they came from
                src = train.reset_index().set_index("prompt_id").loc[tables[name]["prompt_id"], "index"].to_numpy()
                frame["reid_source"] = enc.scores(reid[name], reid["train"][src])
                frame["latent_source"] = latent_distance(latent[name], latent["train"][src])
                frame["source_rank1_latent"] = frame["latent_nn_prompt_id"] == frame["prompt_id"]
                frame["source_rank1_reid"] = frame["reid_nn_prompt_id"] == frame["prompt_id"]
            frames[name] = frame
        self._calibrate(frames)
        self._authenticity(frames["synthetic"], latent, scale)
        self._membership(latent, scale)
        return pd.concat([frames[n] for n in SETS], ignore_index=True)

    # ------------------------------------------------------------------ thresholds and flags
    def _calibrate(self, frames: dict) -> None:
        s = self.settings
        hold = frames["holdout"]
        self.thresholds = calibrate(
            hold["dcr"].to_numpy(),
            hold["reid_nn_score"].to_numpy(),
            dcr_quantile=s.dcr_quantile,
            nndr_max=s.nndr_max,
            reid_quantile=s.reid_quantile,
        )
        for frame in frames.values():
            for rule, flagged in self._flags(frame, self.thresholds).items():
                frame[f"flag_{rule}"] = flagged
        # honest specificity: thresholds fitted on one half of the holdout, applied to the other (2-fold)
        rng = np.random.default_rng(s.seed)
        fold = rng.permutation(len(hold)) % 2
        held = {rule: np.zeros(len(hold), dtype=bool) for rule in RULES}
        for f in (0, 1):
            fit, test = hold[fold != f], hold[fold == f]
            if fit.empty or test.empty:
                continue
            th = calibrate(
                fit["dcr"].to_numpy(),
                fit["reid_nn_score"].to_numpy(),
                dcr_quantile=s.dcr_quantile,
                nndr_max=s.nndr_max,
                reid_quantile=s.reid_quantile,
            )
            for rule, flagged in self._flags(test, th).items():
                held[rule][fold == f] = flagged
        self.results["holdout_crossfit"] = held

    @staticmethod
    def _flags(frame: pd.DataFrame, th: Thresholds) -> dict:
        return flags(frame["dcr"].to_numpy(), frame["nndr"].to_numpy(), frame["reid_nn_score"].to_numpy(), th)

    def _authenticity(self, synth: pd.DataFrame, latent: dict, scale: float) -> None:
        """Alaa et al. 2022: a synthetic image is unauthentic when it is closer to its nearest training image than
        that image is to its own nearest other training image."""
        train = latent["train"]
        if len(train) < 2:
            synth["authentic"] = np.nan
            return
        d, i = self._topk(train, train, "training pool -> itself (authenticity)", k=min(2, len(train)))
        own = np.where(i[:, 0] == np.arange(len(train)), d[:, 1], d[:, 0]) * scale
        nn = self.plan.train.reset_index().set_index("prompt_id").loc[synth["latent_nn_prompt_id"], "index"]
        synth["authentic"] = synth["dcr"].to_numpy() > own[nn.to_numpy()]

    def _membership(self, latent: dict, scale: float) -> None:
        """Distance-based membership inference: training vs holdout images by their distance to the nearest
        synthetic image; AUROC 0.5 = the generations reveal nothing about membership."""
        d_train, _ = self._topk(latent["train"], latent["synthetic"], "training pool -> synthetic (membership)", k=1)
        d_hold, _ = self._topk(latent["holdout"], latent["synthetic"], "holdout -> synthetic (membership)", k=1)
        labels = np.r_[np.ones(len(d_train)), np.zeros(len(d_hold))]
        self.results["mia_auroc"] = float(roc_auc_score(labels, -np.r_[d_train[:, 0], d_hold[:, 0]] * scale))

    # ------------------------------------------------------------------ records
    def warnings(self, per_image: pd.DataFrame) -> list[str]:
        """What makes this run's audit unable to see a copy, in words (also logged and kept in the manifest)."""
        median = per_image.groupby("set")["dcr"].median()
        out = []
        if median["holdout"] <= median["control"]:
            out.append(
                f"the holdout is nearer the training pool (median DCR {median['holdout']:.4g}) than the positive "
                f"controls are to their own source (median {median['control']:.4g}): it is probably not "
                "patient-disjoint, so thresholds calibrated on it cannot separate copies from new images"
            )
        return out

    def thresholds_record(self) -> dict:
        th = self.thresholds
        return {
            "dcr": {"value": th.dcr, "source": th.sources.get("dcr")},
            "nndr": {"value": th.nndr, "source": th.sources.get("nndr")},
            "reid": {"value": th.reid, "source": th.sources.get("reid")},
            "delta": {"value": self.settings.delta, "source": "CheXGenBench's Count Re-ID > delta (parameter)"},
        }

    def counts(self) -> dict:
        p = self.plan
        return {
            "sampled_prompts": len(p.sampled),
            "synthetic": len(p.synth),
            "training_pool": len(p.train),
            "training_patients": int(p.train["patient"].nunique()),
            "holdout": len(p.holdout),
            "control": len(p.control),
        }

    def metrics(self, prompts: pd.DataFrame, per_image: pd.DataFrame, model: str, run_id: str, extractor: str):
        s, rows = self.settings, []
        n_prompts, n_synth = len(prompts), int((per_image["set"] == "synthetic").sum())
        n_train = len(self.plan.train)

        def add(metric, value, space=None, ci=(None, None), n_real=None, n_synth=n_synth, note=None):
            low, high = (None if c is None or (isinstance(c, float) and math.isnan(c)) else c for c in ci)
            rows.append(
                {
                    "run_id": run_id,
                    "model": model,
                    "stage": STAGE,
                    "metric": metric,
                    "subset": "all",
                    "extractor": space,
                    "value": None if value is None else float(value),
                    "ci_low": low,
                    "ci_high": high,
                    "n_real": n_real,
                    "n_synth": n_synth,
                    "note": note,
                }
            )

        boot = {"replicates": s.bootstrap, "level": s.ci_level, "seed": s.seed}
        protocol = "CheXGenBench protocol: each generation vs its prompt's training image; mean over prompts"
        for metric, column, space in (
            ("reid_mean", "Mean_reid_scores", "reid"),
            ("reid_max_mean", "Max_reid_scores", "reid"),
            ("pixel_distance_mean", "Mean_pixel_distance", "pixel"),
            ("latent_distance_mean", "Mean_latent_distance", extractor),
        ):
            values = prompts[column].to_numpy(dtype=float)
            ci = cluster_bootstrap(values, s.bootstrap, s.ci_level, s.seed) if s.bootstrap else (None, None)
            add(metric, values.mean(), space, ci, n_prompts, note=f"{protocol}; prompt bootstrap {boot}")
        synth = per_image[per_image["set"] == "synthetic"]
        add(
            "reid_max",
            synth["reid_source"].max(),
            "reid",
            n_real=n_prompts,
            note="largest re-ID score of any generation vs its source",
        )
        above = int((prompts["Mean_reid_scores"] > s.delta).sum())
        count_ci = tuple(n_prompts * c for c in rate_ci(above, n_prompts, s.ci_level))
        add(
            "reid_count_gt_delta",
            above,
            "reid",
            count_ci,
            n_prompts,
            note=f"prompts whose mean re-ID over their generations exceeds delta={s.delta} "
            "(the original's unit is not in its code)",
        )
        images_above = int((synth["reid_source"] > s.delta).sum())
        add(
            "reid_images_gt_delta",
            images_above,
            "reid",
            n_real=n_prompts,
            note=f"generations with re-ID > delta={s.delta}",
        )

        sets = {name: per_image[per_image["set"] == name] for name in ("synthetic", "holdout", "control")}
        th = self.thresholds_record()
        for rule in RULES:
            space = {"dcr": extractor, "nndr": extractor, "reid": "reid", "any": None}[rule]
            rule_note = "; ".join(
                f"{r}: {th[r]['source']}" for r in (("dcr", "nndr", "reid") if rule == "any" else (rule,))
            )
            k = int(sets["synthetic"][f"flag_{rule}"].sum())
            add(
                f"flag_rate_{rule}",
                k / n_synth,
                space,
                rate_ci(k, n_synth, s.ci_level),
                n_train,
                note=f"fraction of generations flagged (Wilson CI); {rule_note}",
            )
            held = self.results["holdout_crossfit"][rule]
            spec_k = int((~held).sum())
            add(
                f"holdout_specificity_{rule}",
                spec_k / len(held),
                space,
                rate_ci(spec_k, len(held), s.ci_level),
                n_train,
                len(held),
                note="holdout images not flagged, thresholds fitted on the other half (2-fold)",
            )
            ctl = sets["control"][f"flag_{rule}"]
            add(
                f"control_sensitivity_{rule}",
                ctl.mean(),
                space,
                rate_ci(int(ctl.sum()), len(ctl), s.ci_level),
                n_train,
                len(ctl),
                note="augmented training copies flagged (positive control)",
            )
        for space, column in ((extractor, "source_rank1_latent"), ("reid", "source_rank1_reid")):
            hits = sets["control"][column]
            add(
                "control_source_rank1",
                hits.mean(),
                space,
                rate_ci(int(hits.sum()), len(hits), s.ci_level),
                n_train,
                len(hits),
                note="positive controls whose nearest training image is their own source",
            )
        flagged = sets["synthetic"]["flag_any"].to_numpy()
        patients = set(sets["synthetic"]["latent_nn_patient"][flagged]) | set(
            sets["synthetic"]["reid_nn_patient"][flagged & sets["synthetic"]["flag_reid"].to_numpy()]
        )
        n_patients = int(self.plan.train["patient"].nunique())
        add(
            "patients_flagged",
            len(patients),
            None,
            n_real=n_patients,
            note="distinct training patients matched by a flagged generation",
        )
        add(
            "patients_flagged_rate",
            len(patients) / n_patients,
            None,
            rate_ci(len(patients), n_patients, s.ci_level),
            n_patients,
            note="fraction of training patients with >= 1 flagged generation (Wilson CI)",
        )
        add("dcr_median", sets["synthetic"]["dcr"].median(), extractor, n_real=n_train)
        add(
            "dcr_median_holdout",
            sets["holdout"]["dcr"].median(),
            extractor,
            n_real=n_train,
            n_synth=len(sets["holdout"]),
        )
        ratio = sets["synthetic"]["dcr"].median() / sets["holdout"]["dcr"].median()
        add("dcr_median_ratio", ratio, extractor, n_real=n_train, note="median DCR synthetic / holdout; << 1 = copies")
        auth = sets["synthetic"]["authentic"].dropna().astype(bool)
        add(
            "authenticity",
            auth.mean() if len(auth) else None,
            extractor,
            rate_ci(int(auth.sum()), len(auth), s.ci_level),
            n_train,
            note="Alaa et al. 2022 authenticity (fraction of generations authentic)",
        )
        add(
            "mia_auroc",
            self.results["mia_auroc"],
            extractor,
            n_real=n_train + len(sets["holdout"]),
            note="distance-based membership inference, training vs holdout; 0.5 = no leakage",
        )
        return pd.DataFrame(rows)


def _digest(values) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()
