"""Commands of the score area: `score` (generated findings vs the real ones, with bootstrap CIs)."""

from __future__ import annotations

import click
from chexbench_common.options import DIR, FILE, PATH, builds_request, echo_outputs, stage_run_options

from .radgraph_scorer import MODEL_TYPES


@click.command()
@stage_run_options(device=True)
@click.option(
    "--predictions",
    multiple=True,
    metavar="[NAME=]FILE",
    help="Predictions table (parquet/CSV: prompt_id, reference, generated); repeat for several settings. NAME "
    "defaults to the generate folder's setting (generate-p10 -> p10). NAME-seed<S> is training seed S of NAME "
    "(NAME alone seed 0): seeds are scored each and as their mean. Default: every finished "
    "llava-report/generate-*/predictions.parquet of the run.",
)
@click.option("--chexbert", type=FILE, help="CheXbert weights chexbert.pth (local); without it the rows say skipped.")
@click.option("--chexbert-tokenizer", type=DIR, help="Local bert-base-uncased folder (vocab.txt, config.json).")
@click.option(
    "--radgraph-model",
    type=PATH,
    help="RadGraph model: the extracted archive folder or the .tar.gz (only in .venv-radgraph).",
)
@click.option(
    "--radgraph-type",
    type=click.Choice(MODEL_TYPES),
    default="radgraph",
    show_default=True,
    help="radgraph model type (radgraph: the original model LLaVA-Rad scored with; 0.1.x defaults to radgraph-xl).",
)
@click.option("--radgraph-backbone", type=DIR, help="Local BERT folder replacing the archive's Hub backbone name.")
@click.option("--rouge-stemmer/--no-rouge-stemmer", default=False, show_default=True, help="Porter stemmer in ROUGE-L.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=500, show_default=True, help="Resamples (0: no CI).")
@click.option("--ci-level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="CheXbert batch size.")
@builds_request(".score:Request")
def score(request):
    """Score generated findings: BLEU-1/4, ROUGE-L, CheXbert F1, F1-RadGraph, each with a bootstrap CI."""
    from .score import run

    echo_outputs(*run(request))


COMMANDS = [score]
