"""The report-scorer axis (no images): predictions tables for `chexbench-llava-report score`, one per control, all
against the same real reference findings.

Controls (level): `references` 0 = the reference itself; `paraphrase` 1 = the same findings reworded (sentence
order rotated, fixed phrase substitutions that keep every finding, e.g. "There is no X" -> "No X"); `other` 2 =
the findings of another report (never the same text); `empty` 3 = an empty prediction. The references are real
reports: the OpenI reports in the installed torchxrayvision wheel (`--source openi`, the default, chexbench_validate
.openi), or the holdout prompts of the pool (`--source pool`: on MIMIC these are LLaVA-Rad's findings).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError

from .. import openi
from ..plan import PlannedSet, add_sets, run_id_for
from ..splits import split_prompts
from .common import build_command, read_pool

log = logging.getLogger(__name__)
AXIS = "reports"
RUN_ID = run_id_for(AXIS)  # one llava-report run scores the four controls side by side
PREDICTIONS = "predictions.parquet"
CONTROLS = ("references", "paraphrase", "other", "empty")
# wordings radiologists use interchangeably, applied in this order (case-sensitive, whole words)
PARAPHRASES = (
    (r"\bThere is no evidence of\b", "No"),
    (r"\bThere are no\b", "No"),
    (r"\bThere is no\b", "No"),
    (r"\bNo evidence of\b", "No"),
    (r"\bno evidence of\b", "no"),
    (r"\bwithin normal limits\b", "normal"),
    (r"\bis normal in size\b", "is of normal size"),
    (r"\bHeart size is normal\b", "The heart is of normal size"),
    (r"\bThe lungs are clear\b", "Both lungs are clear"),
    (r"\bLungs are clear\b", "Both lungs are clear"),
    (r"\bcardiomediastinal silhouette\b", "cardiac and mediastinal silhouette"),
    (r"\bairspace disease\b", "airspace opacity"),
    (r"\bpleural effusions?\b", "pleural fluid"),
    (r"\bpneumothoraces\b", "pneumothorax"),
    (r"\bis seen\b", "is identified"),
    (r"\bare seen\b", "are identified"),
    (r"\bare noted\b", "are present"),
    (r"\bis noted\b", "is present"),
    (r"\bunremarkable\b", "normal"),
)
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def paraphrase(text: str) -> str:
    """The same findings in other words: the phrase substitutions, then the sentences rotated by one."""
    for pattern, replacement in PARAPHRASES:
        text = re.sub(pattern, replacement, text)
    sentences = [s for s in SENTENCE.split(text.strip()) if s]
    return " ".join(sentences[1:] + sentences[:1])


def references(source: str, pool_prompts: Path, out: Path, n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """(prompt_id, reference) of the n references, and the candidate texts the `other` control draws from."""
    if source == "openi":
        reports = openi.read_reports()
        reports = reports[reports["findings"] != ""]
        table = pd.DataFrame({"prompt_id": reports["report_id"], "reference": reports["findings"]})
    else:
        holdout = split_prompts(out, read_pool(pool_prompts), "holdout")
        table = pd.DataFrame({"prompt_id": holdout["prompt_id"], "reference": holdout["prompt"]})
    table = table.drop_duplicates("prompt_id").reset_index(drop=True)
    if len(table) < 4:
        raise BadInputError(f"{source}: {len(table)} report(s) with findings; the axis needs at least 4")
    order = np.random.default_rng([seed, 2]).permutation(len(table))
    chosen = table.iloc[np.sort(order[:n])].reset_index(drop=True)
    rest = table["reference"].iloc[order[n:]] if len(table) > n else table["reference"]
    return chosen, rest.reset_index(drop=True)


def other_reports(chosen: pd.DataFrame, candidates: pd.Series, seed: int) -> list[str]:
    """For each reference, the findings of another report whose text differs from it (seeded)."""
    rng = np.random.default_rng([seed, 3])
    texts = candidates.to_numpy()
    out = []
    for reference in chosen["reference"]:
        for _ in range(100):
            pick = texts[rng.integers(len(texts))]
            if pick != reference:
                break
        else:
            raise BadInputError("cannot find a report whose findings differ from the reference's")
        out.append(pick)
    return out


def build(pool_prompts: Path, out: Path, seed: int, n: int, source: str) -> list[PlannedSet]:
    chosen, candidates = references(source, pool_prompts, out, n, seed)
    generated = {
        "references": chosen["reference"].tolist(),
        "paraphrase": [paraphrase(t) for t in chosen["reference"]],
        "other": other_reports(chosen, candidates, seed),
        "empty": [""] * len(chosen),
    }
    note = f"{len(chosen)} {source} reports" + (f"; {openi.LICENCE}" if source == "openi" else "")
    planned = []
    for level, control in enumerate(CONTROLS):
        sid = f"{AXIS}-{control}"
        folder = out / sid
        folder.mkdir(parents=True, exist_ok=True)
        table = chosen.assign(generated=generated[control])
        with atomic_path(folder / PREDICTIONS) as tmp:
            table.to_parquet(tmp, index=False)
        planned.append(PlannedSet(sid, AXIS, control, level, control, RUN_ID, note=note))
    add_sets(out, planned)
    log.info("validate: wrote %d report predictions per control under %s", len(chosen), out)
    return planned


@build_command(
    "reports",
    "Predictions tables OUT/reports-<control>/predictions.parquet (prompt_id, reference, generated) for "
    "`chexbench-llava-report score`: the references themselves, paraphrases, other reports' findings, empty.",
)
@click.option("-n", "--n", "n", type=click.IntRange(min=4), default=200, help="Reports per control.")
@click.option(
    "--source",
    type=click.Choice(["openi", "pool"]),
    default="openi",
    help="openi: the OpenI reports in the torchxrayvision wheel; pool: the holdout split's prompts (MIMIC findings).",
)
def command(pool_prompts, pool_root, out, seed, n, source):
    for planned_set in build(pool_prompts, out, seed, n, source):
        click.echo(f"{planned_set.set_id}\t{planned_set.run_id}\t{out / planned_set.set_id / PREDICTIONS}")
