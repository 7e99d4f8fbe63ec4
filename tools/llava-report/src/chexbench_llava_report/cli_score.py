"""Commands of the score area: `score` (generated findings vs the real ones, with bootstrap CIs)."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.options import echo_outputs, stage_run_options

from .radgraph_scorer import MODEL_TYPES

_file = click.Path(path_type=Path, dir_okay=False)
_dir = click.Path(path_type=Path, file_okay=False)


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
@click.option("--chexbert", type=_file, help="CheXbert weights chexbert.pth (local); without it the rows say skipped.")
@click.option("--chexbert-tokenizer", type=_dir, help="Local bert-base-uncased folder (vocab.txt, config.json).")
@click.option(
    "--radgraph-model",
    type=click.Path(path_type=Path),
    help="RadGraph model: the extracted archive folder or the .tar.gz (only in .venv-radgraph).",
)
@click.option(
    "--radgraph-type",
    type=click.Choice(MODEL_TYPES),
    default="radgraph",
    show_default=True,
    help="radgraph model type (radgraph: the original model LLaVA-Rad scored with; 0.1.x defaults to radgraph-xl).",
)
@click.option("--radgraph-backbone", type=_dir, help="Local BERT folder replacing the archive's Hub backbone name.")
@click.option("--rouge-stemmer/--no-rouge-stemmer", default=False, show_default=True, help="Porter stemmer in ROUGE-L.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=500, show_default=True, help="Resamples (0: no CI).")
@click.option("--ci-level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="CheXbert batch size.")
def score(
    results,
    model,
    run_id,
    force,
    device,
    predictions,
    chexbert,
    chexbert_tokenizer,
    radgraph_model,
    radgraph_type,
    radgraph_backbone,
    rouge_stemmer,
    bootstrap,
    ci_level,
    seed,
    batch_size,
):
    """Score generated findings: BLEU-1/4, ROUGE-L, CheXbert F1, F1-RadGraph, each with a bootstrap CI."""
    from chexbench_common.env import configure_caches

    configure_caches()
    from .score import Request, run

    request = Request(
        results=results,
        model=model,
        run_id=run_id,
        predictions=tuple(predictions),
        chexbert=chexbert,
        chexbert_tokenizer=chexbert_tokenizer,
        radgraph_model=radgraph_model,
        radgraph_type=radgraph_type,
        radgraph_backbone=radgraph_backbone,
        rouge_stemmer=rouge_stemmer,
        bootstrap=bootstrap,
        ci_level=ci_level,
        seed=seed,
        batch_size=batch_size,
        device=device,
        force=force,
    )
    echo_outputs(*run(request))


COMMANDS = [score]
