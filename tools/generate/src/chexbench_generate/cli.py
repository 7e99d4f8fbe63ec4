"""chexbench-generate: thin Click layer over registry, runner, merge and importer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.device import DTYPES
from chexbench_common.env import configure_caches

from . import __version__
from .registry import EXTERNAL, REGISTRY, get_model
from .tiny import FAMILIES

main = stage_group("generate", __version__, "Generate synthetic chest X-rays from a prompts table, or import them.")

_path = click.Path(path_type=Path)


def _folder_name(ctx, param, value):
    """Model names and run ids become folder names under Results/: no separators, no '..'."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", value):
        raise click.BadParameter(f"{value!r}: use letters, digits and . _ + - (it becomes a folder name)")
    return value


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_cmd(as_json: bool) -> None:
    """List the registry models and their default settings."""
    rows = [
        {
            "name": s.name,
            "pipeline": s.pipeline,
            "assembly": s.assembly,
            **s.defaults(),
            "lora_file": s.lora_file,
            "components": dict(s.components) or None,
            "source": s.source,
        }
        for s in REGISTRY.values()
    ]
    if as_json:
        click.echo(json.dumps({"models": rows, "external": EXTERNAL}, indent=2))
        return
    click.echo(
        f"{'model':<13} {'pipeline':<25} {'assembly':<10} {'size':>9} {'steps':>5} {'cfg':>4} {'dtype':<8} "
        "call arguments"
    )
    for r in rows:
        extra = ", ".join(f"{k}={v}" for k, v in r["call_kwargs"].items()) or "-"
        click.echo(
            f"{r['name']:<13} {r['pipeline']:<25} {r['assembly']:<10} {str(r['width']) + 'x' + str(r['height']):>9} "
            f"{r['steps']:>5} {r['guidance']:>4g} {r['dtype']:<8} {extra}"
        )
    for name, how in EXTERNAL.items():
        click.echo(f"{name:<13} {how}")


@main.command("run")
@click.option("--model", required=True, help="Registry model (see `chexbench-generate models`).")
@click.option("--model-path", type=_path, required=True, help="Local pipeline folder (the base model for LoRA ones).")
@click.option("--lora", type=_path, help="LoRA safetensors file (or a folder holding it): SD-V3-5, lumina, flux.")
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=PATH",
    help="radedit: unet/vae/text_encoder/tokenizer folder, if not under --model-path.",
)
@click.option("--prompts", type=_path, required=True, help="prompts table (.parquet or .csv).")
@click.option("--results", type=_path, default=Path("Results"), help="Results root.")
@click.option(
    "--run-id",
    default="default",
    callback=_folder_name,
    help="Run id: outputs go to RESULTS/<model-name>/<run-id>/generate/.",
)
@click.option(
    "--model-name", callback=_folder_name, help="Name for the outputs and the `model` column [default: --model]."
)
@click.option("--config", "config_file", type=_path, help="YAML/JSON file of settings (overridden by flags).")
@click.option("--batch-size", type=int, help="Images per pipeline call [default: 8].")
@click.option("--num-images-per-prompt", type=int, help="Images per prompt [default: 1].")
@click.option("--seed", type=int, help="Global seed; per-image seeds derive from it [default: 42].")
@click.option("--height", type=int, help="Image height [default: the model's].")
@click.option("--width", type=int, help="Image width [default: the model's].")
@click.option("--steps", type=int, help="Denoising steps [default: the model's].")
@click.option("--guidance", type=float, help="Guidance scale [default: the model's].")
@click.option("--dtype", type=click.Choice(DTYPES), help="Compute dtype [default: the model's].")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra pipeline argument, e.g. --set max_sequence_length=300 (value parsed as YAML).",
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--limit", type=int, help="Only the first N prompts (quick runs).")
@click.option("--num-shards", type=int, help="Number of shards [default: $SLURM_ARRAY_TASK_COUNT or 1].")
@click.option("--shard-index", type=int, help="This shard, 0-based [default: $SLURM_ARRAY_TASK_ID or 0].")
def run_cmd(
    model,
    model_path,
    lora,
    components,
    prompts,
    results,
    run_id,
    model_name,
    config_file,
    assignments,
    device,
    limit,
    num_shards,
    shard_index,
    **overrides,
) -> None:
    """Generate images for a prompts table (one shard of it), resuming where a previous run stopped."""
    from .loading import locate
    from .plan import shard_from_env
    from .settings import load_config, parse_assignments, resolve

    spec = get_model(model)
    config = load_config(config_file) if config_file else {}
    settings = resolve(spec, config, {**overrides, "call_kwargs": parse_assignments(assignments)})
    files = locate(spec, model_path, lora, parse_assignments(components, "--component", typed=False))
    num_shards, shard_index = shard_from_env(num_shards, shard_index)
    configure_caches()
    from .merge import merge
    from .runner import Job, run_shard

    job = Job(
        files=files,
        settings=settings,
        model_name=model_name or spec.name,
        prompts=prompts,
        results=results,
        run_id=run_id,
        device=device,
        limit=limit,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    if job.is_complete():
        click.echo(f"already complete: {job.stage.dir}")
        return
    part = run_shard(job)
    counts = part["counts"]
    click.echo(
        f"shard {shard_index} of {num_shards}: {counts['generated']} generated, {counts['reused']} already there"
    )
    if num_shards == 1:
        merge(job.stage, 1)
        click.echo(f"wrote {job.stage.dir / 'images.parquet'}")
    else:
        click.echo(
            f"when all {num_shards} shards are done: chexbench-generate merge --results {results} "
            f"--model-name {job.model_name} --run-id {run_id}"
        )


@main.command("merge")
@click.option("--results", type=_path, default=Path("Results"), help="Results root.")
@click.option(
    "--model-name", "--model", "model_name", required=True, callback=_folder_name, help="The run's model name."
)
@click.option("--run-id", default="default", callback=_folder_name, help="Run id.")
@click.option("--num-shards", type=int, help="Shard count to merge (needed only if parts of several exist).")
def merge_cmd(results, model_name, run_id, num_shards) -> None:
    """Check that every shard part is complete and write the run's single images table."""
    from chexbench_common.rundir import StageRun

    from .merge import merge

    stage = StageRun(results, model_name, run_id, "generate", tool_version=__version__)
    manifest = merge(stage, num_shards)
    click.echo(
        f"merged {manifest['counts']['num_shards']} part(s), {manifest['counts']['images']} images: "
        f"{stage.dir / 'images.parquet'}"
    )


@main.command("import")
@click.option("--csv", "csv_file", type=_path, required=True, help="CSV listing the images and their prompts.")
@click.option("--prompts", type=_path, required=True, help="prompts table the images were generated from.")
@click.option(
    "--model-name", required=True, callback=_folder_name, help="Name of the model that made the images (e.g. LLM-CXR)."
)
@click.option("--images-dir", type=_path, help="Folder the CSV's file names are relative to [default: the CSV's].")
@click.option("--prompt-col", help="Column with the prompt text or prompt_id [default: detected].")
@click.option("--file-col", help="Column with the image file name [default: detected].")
@click.option("--allow-unmatched", is_flag=True, help="Import matched rows; list the others in unmatched.csv.")
@click.option("--results", type=_path, default=Path("Results"), help="Results root.")
@click.option("--run-id", default="default", callback=_folder_name, help="Run id.")
def import_cmd(
    csv_file, prompts, model_name, images_dir, prompt_col, file_col, allow_unmatched, results, run_id
) -> None:
    """Bring existing images (e.g. LLM-CXR's, or the original CheXGenBench outputs) into a run."""
    from .importer import ImportJob, import_images

    manifest = import_images(
        ImportJob(
            csv=csv_file,
            prompts=prompts,
            model_name=model_name,
            results=results,
            run_id=run_id,
            images_dir=images_dir,
            prompt_col=prompt_col,
            file_col=file_col,
            allow_unmatched=allow_unmatched,
        )
    )
    counts = manifest["counts"]
    click.echo(
        f"imported {counts['imported']} of {counts['rows']} rows ({counts['unmatched']} unmatched) into "
        f"{results / model_name / run_id / 'generate'}"
    )


@main.command("tiny-pipeline")
@click.argument("family", type=click.Choice(FAMILIES))
@click.argument("out_dir", type=_path)
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_pipeline_cmd(family: str, out_dir: Path, seed: int) -> None:
    """Test/demo tooling: save a tiny random-weight pipeline of FAMILY (diffusers layout) to OUT_DIR.

    Its images mean nothing; it lets the `make bench` demo and tests run the real loading code offline.
    """
    configure_caches()
    from .tiny import build_tiny_pipeline

    click.echo(build_tiny_pipeline(family, out_dir, seed=seed))
