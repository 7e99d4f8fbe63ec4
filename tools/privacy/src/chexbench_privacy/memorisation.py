"""The calibrated nearest-neighbour audit: search every set against the whole training pool in every space (each
embedding space given, and the re-ID network's), decide whether each space can discriminate at all, calibrate its
flag thresholds on the holdout, and flag.

Per-image columns carry the space's name as a suffix (`dcr_inception`, `flag_nndr_raddino`, ...); the re-ID space's
columns start with `reid_`; `flag_any` is the union of every informative rule.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from chexbench_common.neighbours import blocks, knn_radii_sq, nearest
from chexbench_common.progress import Progress
from sklearn.metrics import roc_auc_score

from .audit import calibrate, nndr
from .protocol import latent_distance
from .provenance import REID, Weights

SETS = ("synthetic", "holdout", "control")
LATENT_RULES = ("dcr", "nndr")


@dataclass
class Instrument:
    """One space of the audit: where its weights come from, whether it can discriminate, its thresholds."""

    name: str  # the extractor, or "reid"
    weights: Weights
    spread: float = math.nan
    spread_what: str = ""
    floor: float = math.nan
    informative: bool = False
    thresholds: dict | None = None  # rule -> {"value", "source"}

    @property
    def rules(self) -> tuple[str, ...]:
        return ("reid",) if self.name == REID else LATENT_RULES

    @property
    def flag(self) -> str:
        """per_image column of the union of this space's rules."""
        return "flag_reid" if self.name == REID else f"flag_{self.name}"

    def rule_column(self, rule: str) -> str:
        return "flag_reid" if self.name == REID else f"flag_{rule}_{self.name}"

    def not_informative(self) -> str:
        return (
            f"{self.name} not informative: {self.spread_what} is {self.spread:.3g}, below the floor "
            f"{self.floor:g}; its rules flag nothing"
        )


def spread_of_distances(holdout_dcr: np.ndarray, train_vectors: np.ndarray) -> float:
    """Standard deviation of the holdout's DCR relative to the RMS magnitude of the training vectors (both on the
    ||.|| / sqrt(d) scale): 0 for a constant network, ~1e-7 for one whose distances are float noise."""
    magnitude = float(np.sqrt(np.mean(np.square(train_vectors, dtype=np.float64))))
    if magnitude == 0 or len(holdout_dcr) < 2:
        return 0.0
    return float(np.std(holdout_dcr)) / magnitude


def spread_of_scores(holdout_scores: np.ndarray) -> float:
    """Standard deviation of the holdout's best re-ID scores (probability scale)."""
    return float(np.std(holdout_scores)) if len(holdout_scores) >= 2 else 0.0


class Audit:
    def __init__(self, plan, encoder, settings, weights: dict[str, Weights]):
        self.plan, self.encoder, self.settings = plan, encoder, settings
        self.extractors = list(plan.spaces)
        self.primary = self.extractors[0]  # CheXGenBench's latent distance is measured here
        self.instruments = {name: Instrument(name, weights[name]) for name in [*self.extractors, REID]}
        self.results: dict = {"holdout_crossfit": {}, "mia_auroc": {}}

    def _topk(self, query: np.ndarray, base: np.ndarray, what: str, k: int | None = None):
        k = min(k or self.settings.top_k, len(base))
        with Progress(total=len(query), desc=f"nearest neighbours: {what}", unit="image") as bar:
            return nearest(query, base, k, batch=self.settings.tile, on_batch=bar.update)

    def _own_nearest(self, x: np.ndarray, what: str) -> np.ndarray:
        """Each row's distance to its nearest other row of the same set (the self-search visits each pair once)."""
        n_blocks = len(blocks(len(x), self.settings.tile))
        with Progress(total=n_blocks * (n_blocks + 1) // 2, desc=f"nearest neighbours: {what}", unit="tile") as bar:
            return np.sqrt(knn_radii_sq(x, 1, tile=self.settings.tile, on_tile=lambda *tile: bar.update(1)))

    # ------------------------------------------------------------------ search
    def run(self) -> pd.DataFrame:
        plan = self.plan
        tables = {"synthetic": plan.synth, "holdout": plan.holdout, "control": plan.control}
        ids = {
            "synthetic": plan.synth["image_id"],
            "holdout": plan.holdout["prompt_id"],
            "control": plan.control["image_id"],
        }
        frames = {}
        for name in SETS:
            frame = pd.DataFrame(
                {"set": name, "image_id": ids[name].to_numpy(), "prompt_id": tables[name]["prompt_id"].to_numpy()}
            )
            frame["strength"] = plan.control["strength"].to_numpy() if name == "control" else None
            frames[name] = frame
        vectors = {e: self._latent(e, ids, tables, frames) for e in self.extractors}
        self._reid(tables, frames)
        self._calibrate(frames, vectors)
        for e in self.extractors:
            self._authenticity(e, frames["synthetic"], vectors[e])
            self._membership(e, vectors[e])
        return pd.concat([frames[n] for n in SETS], ignore_index=True)

    def _source_index(self, table: pd.DataFrame) -> np.ndarray:
        train = self.plan.train.reset_index().set_index("prompt_id")
        return train.loc[table["prompt_id"], "index"].to_numpy()

    def _latent(self, extractor: str, ids: dict, tables: dict, frames: dict) -> dict:
        spaces, train = self.plan.spaces[extractor], self.plan.train
        vectors = {"train": spaces["train"].take(train["prompt_id"], "training images")}
        vectors |= {
            "synthetic": spaces["synth"].take(ids["synthetic"], "synthetic images"),
            "holdout": spaces["holdout"].take(ids["holdout"], "holdout images"),
            "control": spaces["control"].take(ids["control"], "positive-control images"),
        }
        scale = 1 / math.sqrt(vectors["train"].shape[1])
        for name in SETS:
            d, i = self._topk(vectors[name], vectors["train"], f"{name} -> training pool ({extractor})")
            d = d * scale
            second = d[:, 1] if d.shape[1] > 1 else np.full(len(d), np.nan)
            frame = frames[name]
            frame[f"nn_prompt_id_{extractor}"] = train["prompt_id"].to_numpy()[i[:, 0]]
            frame[f"nn_patient_{extractor}"] = train["patient"].to_numpy()[i[:, 0]]
            frame[f"dcr_{extractor}"] = d[:, 0]
            frame[f"d2_{extractor}"] = second
            frame[f"nndr_{extractor}"] = nndr(d[:, 0], second)
            if name != "holdout":  # generations and controls also meet the training image they came from
                src = self._source_index(tables[name])
                frame[f"source_{extractor}"] = latent_distance(vectors[name], vectors["train"][src])
                frame[f"rank1_{extractor}"] = frame[f"nn_prompt_id_{extractor}"] == frame["prompt_id"]
        return vectors

    def _reid(self, tables: dict, frames: dict) -> None:
        enc, train = self.encoder, self.plan.train
        embedded = {"train": enc.encode(list(train["file"]), "training pool")}
        for name in SETS:
            identity = _digest(tables[name]["sha256"]) if "sha256" in tables[name] else ""
            embedded[name] = enc.encode(list(tables[name]["file"]), name, identity)
        for name in SETS:
            d, i = self._topk(embedded[name], embedded["train"], f"{name} -> training pool (re-ID)")
            k = i.shape[1]
            rescored = enc.scores(np.repeat(embedded[name], k, axis=0), embedded["train"][i.ravel()]).reshape(-1, k)
            best = rescored.argmax(axis=1)
            chosen = i[np.arange(len(best)), best]
            frame = frames[name]
            frame["reid_nn_prompt_id"] = train["prompt_id"].to_numpy()[chosen]
            frame["reid_nn_patient"] = train["patient"].to_numpy()[chosen]
            frame["reid_nn_score"] = rescored[np.arange(len(best)), best]
            if name != "holdout":
                src = self._source_index(tables[name])
                frame["reid_source"] = enc.scores(embedded[name], embedded["train"][src])
                frame["rank1_reid"] = frame["reid_nn_prompt_id"] == frame["prompt_id"]

    # ------------------------------------------------------------------ informative? thresholds and flags
    def _judge(self, hold: pd.DataFrame, vectors: dict) -> None:
        """Each space discriminates only if its holdout statistic varies by more than the stated floor."""
        for e in self.extractors:
            inst = self.instruments[e]
            inst.spread = spread_of_distances(hold[f"dcr_{e}"].to_numpy(), vectors[e]["train"])
            inst.spread_what = "the holdout's DCR standard deviation relative to the training vectors' RMS magnitude"
            inst.floor = self.settings.space_spread_floor
            inst.informative = inst.spread >= inst.floor
        inst = self.instruments[REID]
        inst.spread = spread_of_scores(hold["reid_nn_score"].to_numpy())
        inst.spread_what = "the standard deviation of the holdout's best re-ID scores"
        inst.floor = self.settings.reid_spread_floor
        inst.informative = inst.spread >= inst.floor

    def _thresholds(self, hold: pd.DataFrame) -> dict:
        """Thresholds of every space from (part of) the holdout: {space: Thresholds}."""
        s = self.settings
        out = {}
        for e in self.extractors:
            out[e] = calibrate(
                hold[f"dcr_{e}"].to_numpy(), dcr_quantile=s.dcr_quantile, nndr_max=s.nndr_max, reid_quantile=1.0
            )
        out[REID] = calibrate(
            hold[f"dcr_{self.primary}"].to_numpy(),
            hold["reid_nn_score"].to_numpy(),
            dcr_quantile=s.dcr_quantile,
            nndr_max=s.nndr_max,
            reid_quantile=s.reid_quantile,
        )
        return out

    def _flags(self, frame: pd.DataFrame, thresholds: dict) -> dict[str, np.ndarray]:
        """Flag columns of `frame`: per rule and space, per space, and their union over informative spaces."""
        out, union = {}, np.zeros(len(frame), dtype=bool)
        for e in self.extractors:
            th, live = thresholds[e], self.instruments[e].informative
            out[f"flag_dcr_{e}"] = (frame[f"dcr_{e}"].to_numpy() < th.dcr) & live
            out[f"flag_nndr_{e}"] = (frame[f"nndr_{e}"].to_numpy() < th.nndr) & live
            out[f"flag_{e}"] = out[f"flag_dcr_{e}"] | out[f"flag_nndr_{e}"]
            union |= out[f"flag_{e}"]
        out["flag_reid"] = (frame["reid_nn_score"].to_numpy() > thresholds[REID].reid) & self.instruments[
            REID
        ].informative
        out["flag_any"] = union | out["flag_reid"]
        return out

    def _calibrate(self, frames: dict, vectors: dict) -> None:
        hold = frames["holdout"]
        self._judge(hold, vectors)
        thresholds = self._thresholds(hold)
        for e in self.extractors:
            th = thresholds[e]
            self.instruments[e].thresholds = {
                "dcr": {"value": th.dcr, "source": th.sources["dcr"]},
                "nndr": {"value": th.nndr, "source": th.sources["nndr"]},
            }
        th = thresholds[REID]
        self.instruments[REID].thresholds = {"reid": {"value": th.reid, "source": th.sources["reid"]}}
        for frame in frames.values():
            for column, flagged in self._flags(frame, thresholds).items():
                frame[column] = flagged
        # honest specificity: thresholds fitted on one half of the holdout, applied to the other (2-fold)
        fold = np.random.default_rng(self.settings.seed).permutation(len(hold)) % 2
        held: dict[str, np.ndarray] = {}
        for f in (0, 1):
            fit, test = hold[fold != f], hold[fold == f]
            if fit.empty or test.empty:
                continue
            for column, flagged in self._flags(test, self._thresholds(fit)).items():
                held.setdefault(column, np.zeros(len(hold), dtype=bool))[fold == f] = flagged
        self.results["holdout_crossfit"] = held

    # ------------------------------------------------------------------ authenticity, membership
    def _authenticity(self, extractor: str, synth: pd.DataFrame, vectors: dict) -> None:
        """Alaa et al. 2022: a synthetic image is unauthentic when it is closer to its nearest training image than
        that image is to its own nearest other training image."""
        train = vectors["train"]
        column = f"authentic_{extractor}"
        if len(train) < 2 or not self.instruments[extractor].informative:
            synth[column] = np.nan
            return
        own = self._own_nearest(train, f"training pool -> itself ({extractor}, authenticity)") / math.sqrt(
            train.shape[1]
        )
        nn = self.plan.train.reset_index().set_index("prompt_id").loc[synth[f"nn_prompt_id_{extractor}"], "index"]
        synth[column] = synth[f"dcr_{extractor}"].to_numpy() > own[nn.to_numpy()]

    def _membership(self, extractor: str, vectors: dict) -> None:
        """Distance-based membership inference: training vs holdout images by their distance to the nearest
        synthetic image; AUROC 0.5 = the generations reveal nothing about membership."""
        if not self.instruments[extractor].informative:
            self.results["mia_auroc"][extractor] = None
            return
        what = f"({extractor}, membership)"
        d_train, _ = self._topk(vectors["train"], vectors["synthetic"], f"training pool -> synthetic {what}", k=1)
        d_hold, _ = self._topk(vectors["holdout"], vectors["synthetic"], f"holdout -> synthetic {what}", k=1)
        labels = np.r_[np.ones(len(d_train)), np.zeros(len(d_hold))]
        self.results["mia_auroc"][extractor] = float(roc_auc_score(labels, -np.r_[d_train[:, 0], d_hold[:, 0]]))

    # ------------------------------------------------------------------ records
    def thresholds_record(self) -> dict:
        """Every threshold (`<rule>/<space>`, `reid`, `delta`) with its value and where it came from."""
        out = {}
        for inst in self.instruments.values():
            for rule, th in inst.thresholds.items():
                key = rule if inst.name == REID else f"{rule}/{inst.name}"
                source = th["source"] if inst.informative else f"{th['source']}; {inst.not_informative()}"
                out[key] = {"value": th["value"], "source": source, "informative": inst.informative}
        out["delta"] = {
            "value": self.settings.delta,
            "source": "CheXGenBench's Count Re-ID > delta (parameter)",
            "informative": self.instruments[REID].informative,
        }
        return out

    def spaces_record(self) -> dict:
        """Per space: its weights (real, stand-in or unverified, and why), whether it discriminates, its spread."""
        return {
            inst.name: {
                "weights": inst.weights.status,
                "weights_evidence": inst.weights.evidence,
                "informative": inst.informative,
                "spread": inst.spread,
                "spread_measure": inst.spread_what,
                "spread_floor": inst.floor,
                "protocol_latent_space": inst.name == self.primary,
            }
            for inst in self.instruments.values()
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


def _digest(values) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()
