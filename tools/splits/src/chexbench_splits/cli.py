"""`chexbench-splits`: convert LLaVA-Rad annotation CSVs to `prompts` tables, and check prompts tables."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import FILE

from . import splits

main = stage_group(
    "splits",
    splits.tool_version(),
    "Prompt splits: turn the LLaVA-Rad annotation CSVs used by CheXGenBench into validated prompts tables.",
)


@main.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=FILE,
    help="LLaVA-Rad annotation CSV (16 columns), e.g. MIMIC_Splits/raw/LLAVARAD_ANNOTATIONS_TEST.csv.",
)
@click.option("--split", required=True, help="Split name written to every row (train, test, train20k, ...).")
@click.option(
    "--out",
    required=True,
    type=FILE,
    help="Output prompts table (.parquet, or .csv with a .meta.json sidecar); <out>.manifest.json is written too.",
)
@click.option(
    "--uncertainty",
    type=click.Choice(list(splits.UNCERTAINTY_POLICIES)),
    default=splits.DEFAULT_POLICY,
    help="Uncertain (-1) labels: u-zeros maps them to 0, u-ones to 1, keep leaves -1.",
)
@click.option(
    "--keep-duplicates",
    is_flag=True,
    help="Keep repeated prompts (the k-th repeat gets prompt_id '<id>.<k>') instead of keeping the first only.",
)
def convert(input_path: Path, split: str, out: Path, uncertainty: str, keep_duplicates: bool) -> None:
    """Convert one annotation CSV into a prompts table plus a manifest."""
    manifest = splits.convert_file(input_path, out, split, uncertainty=uncertainty, keep_duplicates=keep_duplicates)
    dedup = manifest["deduplication"]
    click.echo(
        f"{out}: {manifest['rows_out']} prompts from {manifest['rows_in']} rows "
        f"({dedup['dropped']} repeated prompt(s) dropped, {dedup['duplicates'] - dedup['dropped']} kept); "
        f"uncertainty {uncertainty} ({manifest['uncertain_labels']['count']} uncertain label(s)); "
        f"manifest {splits.manifest_path(out)}"
    )


@main.command()
@click.argument("file", type=FILE)
def check(file: Path) -> None:
    """Validate a prompts table (Parquet or CSV) and print a one-line summary."""
    click.echo(splits.summarize(file))
