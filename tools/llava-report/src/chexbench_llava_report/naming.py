"""Names of the stage's parts: one fine-tuning per fraction and training seed (`finetune-p<P>[-seed<S>]`), its
generation (`generate-p<P>[-seed<S>]`) and the setting its predictions are scored as.

Seed 0 keeps the single-seed names (`p50`); any other seed adds `-seed<S>`. Score groups the tables `<setting>`,
`<setting>-seed1`, ... as seeds 0, 1, ... of one setting.
"""

from __future__ import annotations

import re

_SEEDED = re.compile(r"^(?P<setting>.+)-seed(?P<seed>\d+)$")


def tuned(fraction: int, seed: int) -> str:
    """The name of a fine-tuning on `fraction` % with training seed `seed`: p50, p50-seed1, ..."""
    return f"p{fraction}" if seed == 0 else f"p{fraction}-seed{seed}"


def split_seed(name: str) -> tuple[str, int]:
    """A predictions table's name -> (setting, seed): p50-seed2 -> (p50, 2); p50 or zeroshot -> (itself, 0)."""
    match = _SEEDED.match(name)
    return (match.group("setting"), int(match.group("seed"))) if match else (name, 0)


def seed_subset(setting: str, seed: int) -> str:
    """The metrics table's subset of one seed of a setting trained with several (classify's convention)."""
    return f"{setting}/seed{seed}"
