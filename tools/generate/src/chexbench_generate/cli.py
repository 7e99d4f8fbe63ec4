"""chexbench-generate: thin Click layer over registry, runner, merge and importer."""

from __future__ import annotations

import json
from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.device import DTYPES
from chexbench_common.env import configure_caches
from chexbench_common.options import (
    PATH,
    builds_request,
    folder_name,
    merge_options,
    results_option,
    run_id_option,
    shard_options,
    stage_run_options,
)

from . import __version__
from .parts import VERIFY_MODES
from .registry import EXTERNAL, REGISTRY, get_model
from .tiny import FAMILIES

main = stage_group("generate", __version__, "Generate synthetic chest X-rays from a prompts table, or import them.")


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


def _verify_option(f):
    return click.option(
        "--verify",
        type=click.Choice(VERIFY_MODES),
        default="fast",
        help="How finished images are checked before they are reused: fast (size and time, hash when the time "
        "differs) or full (hash and decode every file).",
    )(f)


def _deprecated_model_name(ctx, param, value):
    """The 0.1 spelling `--model <registry id> --model-name <folder>` still works, with a line saying so."""
    if folder_name(ctx, param, value) is not None:
        click.echo(
            "chexbench-generate: deprecated: `--model <registry id> --model-name <folder>` is now "
            "`--generator <registry id> --model <folder>`; the old spelling goes in the next release",
            err=True,
        )
    return value


def _spec(generator: str | None, model: str):
    """The registry model: --generator, else --model (in the 0.1 spelling --model is the registry id)."""
    return get_model(generator or model)


def _settings(generator, model, config_file, assignments, **flags):
    """Registry defaults <- the config file <- the flags given (None: not given)."""
    from .settings import load_config, parse_assignments, resolve

    config = load_config(config_file) if config_file else {}
    return resolve(_spec(generator, model), config, {**flags, "call_kwargs": parse_assignments(assignments)})


def _files(generator, model, model_path, lora, components):
    from .loading import locate
    from .settings import parse_assignments

    return locate(_spec(generator, model), model_path, lora, parse_assignments(components, "--component", typed=False))


@main.command("run")
@stage_run_options()
@shard_options
@click.option("--generator", help="Registry model to run (see `chexbench-generate models`) [default: --model].")
@click.option(
    "--model-name", callback=_deprecated_model_name, hidden=True, help="Deprecated: the output folder, now --model."
)
@click.option("--model-path", type=PATH, required=True, help="Local pipeline folder (the base model for LoRA ones).")
@click.option("--lora", type=PATH, help="LoRA safetensors file (or a folder holding it): SD-V3-5, lumina, flux.")
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=PATH",
    help="radedit: unet/vae/text_encoder/tokenizer folder, if not under --model-path.",
)
@click.option("--prompts", type=PATH, required=True, help="prompts table (.parquet or .csv).")
@click.option("--config", "config_file", type=PATH, help="YAML/JSON file of settings (overridden by flags).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per pipeline call [default: 8].")
@click.option("--num-images-per-prompt", type=click.IntRange(min=1), help="Images per prompt [default: 1].")
@click.option("--seed", type=int, help="Global seed; per-image seeds derive from it [default: 42].")
@click.option("--height", type=click.IntRange(min=8), help="Image height [default: the model's].")
@click.option("--width", type=click.IntRange(min=8), help="Image width [default: the model's].")
@click.option("--steps", type=click.IntRange(min=1), help="Denoising steps [default: the model's].")
@click.option("--guidance", type=float, help="Guidance scale [default: the model's].")
@click.option("--dtype", type=click.Choice(DTYPES), help="Compute dtype [default: the model's].")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra pipeline argument, e.g. --set max_sequence_length=300 (value parsed as YAML).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N prompts (quick runs).")
@_verify_option
@builds_request(
    ".runner:Job",
    settings=_settings,
    files=_files,
    model_name=lambda model, model_name: model_name or model,
)
def run_cmd(job) -> None:
    """Generate images for a prompts table (one shard of it), resuming where a previous run stopped and
    regenerating any finished image that is missing or damaged."""
    from .merge import merge
    from .runner import run_shard

    results, model, run_id, shard = job.results, job.model_name, job.run_id, job.shard
    part, did_work = run_shard(job)
    counts = part["counts"]
    generated = counts["generated"] if did_work else 0
    reused = counts["reused"] if did_work else counts["items"]
    if shard.sharded:
        click.echo(f"shard {shard.index} of {shard.count}: {generated} generated, {reused} already there")
        click.echo(
            f"when all {shard.count} shards are done: chexbench-generate merge --results {results} "
            f"--model {model} --run-id {run_id}"
        )
        return
    stage, merged = merge(results, model, run_id, 1, job.verify, job.force)
    if merged or did_work:
        click.echo(f"{generated} generated, {reused} already there")
        click.echo(f"wrote {stage.dir / 'images.parquet'}")
    else:
        click.echo(f"already complete: {stage.dir}")


@main.command("merge")
@merge_options
@_verify_option
def merge_cmd(results, model, run_id, num_shards, force, verify) -> None:
    """Check that every shard part is complete and its images intact, then write the run's single images table."""
    from .merge import merge

    stage, did_work = merge(results, model, run_id, num_shards, verify, force)
    manifest = stage.read_manifest()
    click.echo(
        f"merged {manifest['counts']['num_shards']} part(s), {manifest['counts']['images']} images: "
        f"{stage.dir / 'images.parquet'}" + ("" if did_work else " (up to date)")
    )


@main.command("import")
@click.option("--csv", type=PATH, required=True, help="CSV listing the images and their prompts.")
@click.option("--prompts", type=PATH, required=True, help="prompts table the images were generated from.")
@click.option(
    "--model",
    "--model-name",
    "model_name",
    required=True,
    callback=folder_name,
    help="Name of the model that made the images (e.g. LLM-CXR): the output folder.",
)
@click.option("--images-dir", type=PATH, help="Folder the CSV's file names are relative to [default: the CSV's].")
@click.option("--prompt-col", help="Column with the prompt text or prompt_id [default: detected].")
@click.option("--file-col", help="Column with the image file name [default: detected].")
@click.option("--allow-unmatched", is_flag=True, help="Import matched rows; list the others in unmatched.csv.")
@results_option
@run_id_option
@builds_request(".importer:ImportJob")
def import_cmd(job) -> None:
    """Bring existing images (e.g. LLM-CXR's, or the original CheXGenBench outputs) into a run."""
    from .importer import import_images

    counts = import_images(job)["counts"]
    click.echo(
        f"imported {counts['imported']} of {counts['rows']} rows ({counts['unmatched']} unmatched) into "
        f"{job.results / job.model_name / job.run_id / 'generate'}"
    )


@main.command("tiny-pipeline")
@click.argument("family", type=click.Choice(FAMILIES))
@click.argument("out_dir", type=PATH)
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_pipeline_cmd(family: str, out_dir: Path, seed: int) -> None:
    """Test/demo tooling: save a tiny random-weight pipeline of FAMILY (diffusers layout) to OUT_DIR.

    Its images mean nothing; it lets the `make bench` demo and tests run the real loading code offline.
    """
    configure_caches()
    from .tiny import build_tiny_pipeline

    click.echo(build_tiny_pipeline(family, out_dir, seed=seed))
