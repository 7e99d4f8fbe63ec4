"""CheXpert labels as training targets: the uncertainty policy decides what -1 means, blanks are negatives (as the
original). Values other than 1, 0, -1 and blank never arrive: the prompts table contract refuses them on read."""

from __future__ import annotations

import numpy as np
import pandas as pd
from chexbench_schema import CHEXPERT_LABELS

POLICIES = {
    "zeros": "U-Zeros: uncertain (-1) and blank are negative (CheXGenBench)",
    "ones": "U-Ones: uncertain (-1) is positive, blank negative",
    "ignore": "U-Ignore: uncertain (-1) is left out of the loss and the metrics, blank negative",
}


def targets(frame: pd.DataFrame, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets float32 (n, 14), mask bool (n, 14)): mask is False where the policy leaves an entry out."""
    values = frame[list(CHEXPERT_LABELS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    uncertain = values == -1
    y = np.where(values == 1, 1.0, 0.0)
    if policy == "ones":
        y[uncertain] = 1.0
    mask = ~uncertain if policy == "ignore" else np.ones_like(uncertain)
    return y.astype(np.float32), mask
