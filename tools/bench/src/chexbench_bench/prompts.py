"""Our own short findings prompts with CheXpert labels (invented text; no MIMIC content)."""

from __future__ import annotations

import itertools

import numpy as np
from chexbench_schema import CHEXPERT_LABELS
from chexbench_schema.tables import prompt_id

__all__ = ["demo_prompts", "label_row", "pool_prompts", "prompt_id"]

# (sentence, {label: value}); -1 marks an uncertain finding
FINDINGS: tuple[tuple[str, dict[str, int]], ...] = (
    ("No acute cardiopulmonary process.", {"No Finding": 1}),
    ("Small left pleural effusion with adjacent basilar atelectasis.", {"Pleural Effusion": 1, "Atelectasis": 1}),
    ("Moderate cardiomegaly with mild pulmonary edema.", {"Cardiomegaly": 1, "Edema": 1}),
    (
        "Right lower lobe consolidation concerning for pneumonia.",
        {"Consolidation": 1, "Pneumonia": 1, "Lung Opacity": 1},
    ),
    ("Small right apical pneumothorax.", {"Pneumothorax": 1}),
    ("Enlarged cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": 1}),
    ("Healing fracture of the left sixth rib.", {"Fracture": 1}),
    ("Nodular opacity in the right upper lobe.", {"Lung Lesion": 1, "Lung Opacity": 1}),
    ("Bilateral pleural effusions, larger on the right.", {"Pleural Effusion": 1}),
    ("Patchy bibasilar opacities, possibly atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
)
QUALIFIERS: tuple[tuple[str, dict[str, int]], ...] = (
    ("", {}),
    ("Stable mild pleural thickening at the left apex.", {"Pleural Other": 1}),
    ("Endotracheal tube terminates above the carina.", {"Support Devices": 1}),
    ("Left central venous catheter with tip in the superior vena cava.", {"Support Devices": 1}),
)
CR_PROMPT = (
    "Multiple rounded nodular opacities in both mid and lower lungs.",
    {"Lung Lesion": 1, "Lung Opacity": 1},
)


def demo_prompts(n: int) -> list[tuple[str, dict[str, int]]]:
    """n distinct prompts: every finding with every qualifier, in a fixed order (at most 40)."""
    combos = [
        (" ".join(part for part in (finding, qualifier) if part), _consistent({**labels, **extra}))
        for (qualifier, extra), (finding, labels) in itertools.product(QUALIFIERS, FINDINGS)
    ]
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} demo prompts exist, {n} were asked for")
    return combos[:n]


def _consistent(labels: dict[str, int]) -> dict[str, int]:
    """CheXpert's rule: No Finding is positive only when nothing but support devices is."""
    others = {k for k, v in labels.items() if v == 1 and k not in ("No Finding", "Support Devices")}
    return {k: v for k, v in labels.items() if not (k == "No Finding" and others)}


def label_row(labels: dict[str, int]) -> dict[str, int | None]:
    unknown = set(labels) - set(CHEXPERT_LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}")
    return {label: labels.get(label) for label in CHEXPERT_LABELS}


# how the film was taken: no CheXpert label, they only make each pool prompt (and so its prompt_id) distinct
TECHNIQUES = (
    "",
    "Portable AP view.",
    "Low lung volumes.",
    "Patient is slightly rotated.",
    "No change from the prior study.",
    "Limited inspiratory effort.",
    "Upright frontal view.",
)
MAX_POOL_PROMPTS = len(FINDINGS) * len(QUALIFIERS) * len(TECHNIQUES)


def pool_prompts(n: int, seed: int) -> list[tuple[str, dict[str, int]]]:
    """n distinct prompts for the validation pool: every finding, qualifier and technique sentence combined, in a
    seeded order (at most MAX_POOL_PROMPTS)."""
    combos = [
        (" ".join(part for part in (finding, qualifier, technique) if part), _consistent({**labels, **extra}))
        for (finding, labels), (qualifier, extra), technique in itertools.product(FINDINGS, QUALIFIERS, TECHNIQUES)
    ]
    if n > MAX_POOL_PROMPTS:
        raise ValueError(f"at most {MAX_POOL_PROMPTS} pool prompts exist, {n} were asked for")
    order = np.random.default_rng(seed).permutation(len(combos))[:n]
    return [combos[i] for i in order]
