"""chexbench-validate: thin Click layer over splits, the axes' set builders and the judge."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.errors import ChexbenchError
from chexbench_common.options import (
    echo_outputs,
    folder_name,
    force_option,
    model_option,
    progress_option,
    results_option,
)

from . import __version__
from .axes import alignment, fidelity, privacy, reports, utility

main = stage_group(
    "validate",
    __version__,
    "Known-answer sets built from a real pool, run through the ordinary stages, and the relations every verdict "
    "must show on them, judged with their uncertainty (make validate).",
)
_path = click.Path(path_type=Path)
EXIT_RELATION_FAILED = 8


class RelationsFailed(ChexbenchError):
    """--strict: a relation failed (or stayed underpowered where it must pass)."""

    exit_code = EXIT_RELATION_FAILED


@main.command()
@click.option("--pool-prompts", type=_path, required=True, help="prompts table of the real pool.")
@click.option("--out", type=_path, required=True, help="Folder of splits.csv and the per-split prompts tables.")
@click.option("--seed", type=int, default=0, help="Seed of the patients' shuffle.")
@click.option(
    "--split",
    "fractions",
    multiple=True,
    metavar="NAME=FRACTION",
    help="A split and its share of the images (repeat; the shares sum to 1) [default: reference=0.5 holdout=0.5].",
)
def split(pool_prompts, out, seed, fractions):
    """Split the pool patient-disjointly once, for every axis: OUT/splits.csv and OUT/prompts_<split>.parquet."""
    from .splits import parse_fractions, split_pool

    table = split_pool(pool_prompts, out, parse_fractions(fractions), seed)
    for name, count in table["split"].value_counts().sort_index().items():
        click.echo(f"{name}\t{count}")


@main.group()
def build():
    """Write one axis's known-answer sets under OUT/<set_id>/ and their rows into OUT/plan.csv."""


for axis in (fidelity, reports, privacy, utility, alignment):
    build.add_command(axis.command)


@main.command("sets")
@click.option("--plan", type=_path, required=True, help="plan.csv of the sets (written by build).")
@click.option("--axis", help="Only this axis's sets.")
def list_sets(plan, axis):
    """Print set_id, run_id and control of every planned set (tab-separated, plan order), for make's loops."""
    from .plan import read_plan

    table = read_plan(plan)
    if axis is not None:
        table = table[table["axis"] == axis]
    for row in table.itertuples():
        click.echo(f"{row.set_id}\t{row.run_id}\t{row.control}")


@main.command()
@results_option
@model_option
@click.option("--run-id", default="validate", callback=folder_name, help="Run id of the judgement's folder.")
@click.option("--plan", type=_path, required=True, help="plan.csv of the sets (written by build).")
@click.option("--relations", type=_path, help="Relations file [default: the packaged relations.yml].")
@click.option(
    "--weights",
    "declarations",
    multiple=True,
    metavar="NAME=real|stand-in",
    help="Declare where an extractor's or chexbert's weights come from when no pinned sha256 or shape tells.",
)
@click.option("--registry", type=_path, help="Model registry whose pinned sha256s count as real weights.")
@click.option("--strict", is_flag=True, help=f"Exit {EXIT_RELATION_FAILED} when a judged relation fails.")
@click.option("--quiet", is_flag=True, help="No line per relation (the outputs and a --strict failure still print).")
@force_option
@progress_option
def judge(results, model, run_id, plan, relations, declarations, registry, strict, quiet, force):
    """Judge every relation that applies to the plan's sets: <results>/<model>/<run-id>/validate/validation.csv."""
    from .judge import Request, gate_failures, summary_lines
    from .judge import judge as run_judge
    from .weights import parse_declarations

    request = Request(
        results=results,
        model=model,
        plan=plan,
        relations=relations,
        run_id=run_id,
        declared=parse_declarations(declarations),
        registry=registry,
        force=force,
    )
    stage, did_work, table = run_judge(request)
    for line in [] if quiet else summary_lines(table):
        click.echo(line, err=True)
    echo_outputs(stage, did_work)
    failed = gate_failures(table)
    if strict and len(failed):
        raise RelationsFailed(
            f"{len(failed)} relation(s) did not pass: {', '.join(failed['relation'])} "
            f"(see {stage.dir / 'validation.csv'})"
        )


@main.command()
@click.option("--plan", type=_path, required=True, help="plan.csv of the sets (written by build).")
@click.option("--axis", required=True, help="The axis whose sets go into the union.")
@click.option("--control", "controls", multiple=True, help="Only these controls' sets (repeat) [default: every set].")
@click.option("--out", type=_path, required=True, help="Folder of the union's images.csv.")
def union(plan, axis, controls, out):
    """One images.csv of every set of an axis, for one `chexbench-generate import --images-dir <sets>` and one embed
    run over all of them; `slice` then gives each set its own tables."""
    from .union import write_union

    path, count = write_union(plan, axis, controls, out)
    click.echo(f"{path} ({count} sets)")


@main.command("slice")
@click.option(
    "--union", "unions", type=_path, multiple=True, required=True, help="images.csv written by `union` (repeat)."
)
@click.option(
    "--run",
    "runs",
    type=_path,
    multiple=True,
    required=True,
    help="The run that imported and embedded it (repeat, one per --union, in the same order).",
)
@click.option("--out", type=_path, required=True, help="Folder of the sets (each set's tables go to <set_id>/embed/).")
def slice_tables(unions, runs, out):
    """Write each set's rows of the union runs' synthetic embeddings tables, link their real tables, and write the
    set's images table (from the first union that holds it) into OUT/<set_id>/embed/: the tables an embed run of the
    set alone would give."""
    from .union import slice_runs

    if len(unions) != len(runs):
        raise click.UsageError(f"{len(unions)} --union but {len(runs)} --run: give one run per union")
    written = slice_runs(list(zip(unions, runs, strict=True)), out)
    click.echo(f"{len(written)} tables under {out}/*/embed")
