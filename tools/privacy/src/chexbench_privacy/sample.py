"""`chexbench-privacy sample`: the training prompts to generate from, and the positive-control copies.

Prompts: the TRAIN prompts table de-duplicated by prompt text (first row kept, as the original's drop_duplicates),
rows without a source image dropped, then N drawn without replacement with a seeded generator. Generation then runs
through chexbench-generate with --num-images-per-prompt (per-image seeds are distinct hashes of prompt and index).

Positive control: M further training images (drawn from the whole training pool, seeded), each copied once per rung
of the ladder of named strengths (ladder.py: exact, mild, moderate, strong), as a copying generator would output them
at its resolution. They are written as an images table so chexbench-embed can embed them like generations, with
control/augmentations.csv saying the strength and every parameter of each copy; chexbench-privacy run reports
sensitivity and rank-1 source recovery per strength.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError, ImageDecodeError, ImageDecodeErrors
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey, save_grey_png
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.paths import resolve_under
from chexbench_common.progress import track
from chexbench_common.rundir import StageRun
from chexbench_schema import read_table, write_table

from . import __version__
from .ladder import LADDER, augment, ladder_record

STAGE = "privacy-sample"
PRODUCER = f"chexbench-privacy {__version__} (sample)"
CONTROL_MODEL = "positive-control"
PROMPTS_OUT = "prompts.parquet"
CONTROL_DIR = "control"
CONTROL_TABLE = "control/images.parquet"
CONTROL_AUGMENTATIONS = "control/augmentations.csv"


@dataclass(frozen=True)
class SampleRequest:
    prompts: Path
    real_root: Path
    results: Path
    model: str
    run_id: str
    n: int = 2000
    controls: int = 200
    size: int = 512
    seed: int = 42
    force: bool = False


def dedupe(prompts: pd.DataFrame) -> pd.DataFrame:
    """The original's de-duplication: one row per prompt text (the first), rows without a source image dropped."""
    kept = prompts.drop_duplicates(subset="prompt", keep="first")
    return kept[kept["image_path"].notna()].reset_index(drop=True)


def draw(pool: pd.DataFrame, n: int, rng: np.random.Generator, what: str, source: Path) -> pd.DataFrame:
    if n > len(pool):
        raise BadInputError(
            f"{source}: {what} needs {n} training prompts with a source image but the table has {len(pool)} "
            "after de-duplication; ask for fewer"
        )
    return pool.iloc[np.sort(rng.choice(len(pool), size=n, replace=False))].reset_index(drop=True)


def _control_images(request: SampleRequest, sources: pd.DataFrame, out_dir: Path, rng) -> pd.DataFrame:
    """The ladder's copies of every source image. A missing or undecodable source stops the copying; the rest are
    still read, so the error names every bad source at once."""
    rows, recipes, bad = [], [], []
    images_dir = out_dir / CONTROL_DIR / "images"
    for i, row in track(list(sources.iterrows()), desc="positive controls", unit="img"):
        path = resolve_under(request.real_root, row["image_path"], where=f"{request.prompts} row {i + 1}")
        where = f"{request.prompts}: prompt {row['prompt_id']}"
        if not path.is_file():
            bad.append(f"{where}: source image {path} is missing; check --real-root or the table")
            continue
        try:
            grey = load_grey(path)
        except ImageDecodeError as exc:
            bad.append(f"{where}: {exc}")
            continue
        if bad:
            continue
        for index, strength in enumerate(LADDER):
            pixels, recipe = augment(grey, request.size, strength, rng)
            image_id = f"{row['prompt_id']}-{strength.name}"
            name = f"{image_id}.png"
            save_grey_png(np.round(pixels * 255).astype(np.uint8), images_dir / name)
            rows.append(
                {
                    "image_id": image_id,
                    "prompt_id": row["prompt_id"],
                    "model": CONTROL_MODEL,
                    "path": name,
                    "seed": None,
                    "sample_index": index,
                    "width": request.size,
                    "height": request.size,
                    "steps": None,
                    "guidance": None,
                    "dtype": None,
                    "sha256": sha256_file(images_dir / name),
                }
            )
            recipes.append({"image_id": image_id, "source_image": row["image_path"], **recipe})
    if bad:
        raise ImageDecodeErrors(bad)
    pd.DataFrame(recipes).to_csv(out_dir / CONTROL_AUGMENTATIONS, index=False)
    return pd.DataFrame(rows)


def run_sample(request: SampleRequest) -> tuple[StageRun, bool]:
    """Write <run>/privacy-sample/: prompts.parquet (to generate from) and control/ (images table + PNGs)."""
    stage = StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)
    with Lifecycle(stage, force=request.force) as life:
        table = read_table(request.prompts, "prompts")
        pool = dedupe(table)
        params = {k: v for k, v in asdict(request).items() if k in ("n", "controls", "size", "seed")}
        params["real_root"] = str(request.real_root)
        params["ladder"] = ladder_record()
        inputs = {"prompts": request.prompts}
        rng = np.random.default_rng(request.seed)
        sampled = draw(pool, request.n, rng, f"--n {request.n}", request.prompts)
        controls = draw(pool, request.controls, rng, f"--controls {request.controls}", request.prompts)
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, clear=[PROMPTS_OUT])
        shutil.rmtree(stage.dir / CONTROL_DIR, ignore_errors=True)
        control_table = _control_images(request, controls, stage.dir, rng)
        meta = {"sampled_from": str(request.prompts), "n": request.n, "seed": request.seed}
        outputs = {
            "control_images": write_table(
                control_table,
                stage.dir / CONTROL_TABLE,
                "images",
                producer=PRODUCER,
                run_id=request.run_id,
                extra={
                    "images_root": "images",
                    "purpose": "positive control: training images copied at each strength of the ladder",
                    "ladder": ladder_record(),
                },
            ),
            "control_augmentations": stage.dir / CONTROL_AUGMENTATIONS,
            "prompts": write_table(
                sampled[table.columns],
                stage.dir / PROMPTS_OUT,
                "prompts",
                producer=PRODUCER,
                run_id=request.run_id,
                extra=meta,
            ),
        }
        life.update(
            counts={
                "pool": len(pool),
                "table_rows": len(table),
                "sampled": len(sampled),
                "control_sources": len(controls),
                "controls": len(control_table),
            },
            ladder=ladder_record(),
        )
        life.finish(outputs)
    return stage, True
