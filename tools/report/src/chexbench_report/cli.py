"""chexbench-report: thin Click layer over run.py (one run's page) and leaderboard.py (every run)."""

from __future__ import annotations

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import DIR, FILE, echo_outputs, results_option, stage_run_options

from . import __version__

main = stage_group("report", __version__, "One self-contained HTML report per run, and a leaderboard across runs.")


@main.command()
@stage_run_options(device=False)
@click.option(
    "--out",
    type=FILE,
    help="Also copy report.html here (the report itself is always <results>/<model>/<run-id>/report/).",
)
@click.option(
    "--map",
    "embedding_map",
    type=click.Choice(["pca", "umap"]),
    default="pca",
    show_default=True,
    help="The embedding map: PCA (exact, fitted on every vector) or UMAP (umap-learn; neighbourhoods, seeded).",
)
def run(**params):
    """Write <results>/<model>/<run-id>/report/report.html (one self-contained file) and report.json."""
    from .run import run as run_report

    echo_outputs(*run_report(**params))
    if params["out"] is not None:
        click.echo(params["out"])


@main.command()
@results_option
@click.option(
    "--out",
    type=DIR,
    help="Folder for leaderboard.html, leaderboard.csv, leaderboard_conditional.csv and leaderboard_published.csv "
    "[default: <results>/_leaderboard].",
)
@click.option(
    "--rank-by",
    default=None,
    help="Leaderboard column that ranks the runs [default: FID (RadDino), else the first ranked column present].",
)
def leaderboard(results, out, rank_by):
    """Every finished run under RESULTS (all models and run ids) in one sortable page and the original's CSVs, with
    CheXGenBench's published values beside the runs of the models it published."""
    from .leaderboard import write_leaderboard

    for path in write_leaderboard(results, out or results / "_leaderboard", rank_by):
        click.echo(path)
