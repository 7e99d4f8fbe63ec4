"""F1-RadGraph (partial reward) by calling the `radgraph` package, which only runs in the isolated scoring
environment `.venv-radgraph` (transformers < 5; `make setup-radgraph`). The main environment reports the rows as
skipped instead.

radgraph 0.1.x looks for `<model_cache_dir>/<model_type>/{config.json, vocabulary/, weights.th}` and downloads the
archive when that folder is missing. Here the user's local model (the extracted archive or the `.tar.gz` itself) is
staged under a temporary cache folder, so nothing is ever downloaded; `--radgraph-backbone` points the archive's
`model_name` (a Hub id) at a local BERT folder for offline use.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from chexbench_common.errors import BadInputError, MissingResourceError

MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl")
SETUP_HINT = "run .venv-radgraph/bin/chexbench-llava-report score (built by `make setup-radgraph`)"


def installed_version() -> str | None:
    """The radgraph package's version, or None where it is not installed (the main environment)."""
    try:
        return importlib.metadata.version("radgraph")
    except importlib.metadata.PackageNotFoundError:
        return None


def stage_model(model: Path, model_type: str, backbone: Path | None, cache: Path) -> Path:
    """Lay out `cache/<model_type>/` as radgraph expects it, from a model folder or its .tar.gz; returns it."""
    target = cache / model_type
    if Path(model).is_file():
        with tarfile.open(model, "r:gz") as archive:
            archive.extractall(target, filter="data")
        nested = [p.parent for p in target.rglob("config.json")]
        source = nested[0] if nested else target
    else:
        source = Path(model)
    for needed in ("config.json", "weights.th", "vocabulary"):
        if not (source / needed).exists():
            raise MissingResourceError(
                f"{model}: no {needed}; --radgraph-model must be the extracted RadGraph archive "
                "(config.json, vocabulary/, weights.th) or the .tar.gz itself"
            )
    if source != target:
        target.mkdir(parents=True, exist_ok=True)
        for item in ("weights.th", "vocabulary"):
            (target / item).symlink_to((source / item).resolve())
    config = json.loads((source / "config.json").read_text())
    if backbone is not None:
        config["dataset_reader"]["token_indexers"]["bert"]["model_name"] = str(Path(backbone).resolve())
        config["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = str(Path(backbone).resolve())
    (target / "config.json").unlink(missing_ok=True)
    (target / "config.json").write_text(json.dumps(config))
    return target


def backbone_name(model: Path) -> str:
    """The BERT backbone named in a model folder's config.json (for the manifest)."""
    folder = Path(model)
    if folder.is_dir() and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        return config["model"]["embedder"]["token_embedders"]["bert"]["model_name"]
    return "inside the archive"


def partial_rewards(
    generated: list[str],
    references: list[str],
    model: Path,
    model_type: str,
    backbone: Path | None,
    device,
    batch_size: int = 1,
) -> np.ndarray:
    """radgraph's F1RadGraph(reward_level="partial") per report (0 where either report is empty, as radgraph
    scores it); the mean of these is F1-RadGraph."""
    from radgraph import F1RadGraph  # only in .venv-radgraph; score.Scorers says so before any work

    cuda = -1 if device.type == "cpu" else (device.index or 0)
    with tempfile.TemporaryDirectory(prefix="chexbench-radgraph-") as cache:
        stage_model(Path(model), model_type, backbone, Path(cache))
        # radgraph prints to stdout; keep stdout for the output paths the CLI echoes
        with contextlib.redirect_stdout(sys.stderr):
            try:
                scorer = F1RadGraph(
                    reward_level="partial",
                    model_type=model_type,
                    model_cache_dir=cache,
                    cuda=cuda,
                    batch_size=batch_size,
                )
            except (OSError, KeyError, RuntimeError) as exc:
                raise BadInputError(f"{model}: radgraph could not load this {model_type} model: {exc}") from None
            _, rewards, _, _ = scorer(refs=list(references), hyps=list(generated))
    return np.asarray(rewards, dtype=float)


def write_tiny_radgraph(folder: Path, model_type: str = "radgraph", seed: int = 0) -> tuple[Path, Path]:
    """A random RadGraph model in the archive's layout (config.json, vocabulary/, weights.th) and its tiny BERT
    backbone folder, built with radgraph's own classes (for `make test-radgraph`; needs the radgraph package).
    Returns (model folder, backbone folder). Random weights: the annotations are noise, the plumbing is real."""
    import torch
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie
    from transformers import BertConfig, BertModel, BertTokenizer

    from .chexbert import TINY_WORDS

    folder = Path(folder)
    backbone = folder / "backbone"
    backbone.mkdir(parents=True, exist_ok=True)
    # radgraph's tokenizer wrapper tells special tokens apart by encoding "1" and "2": digits must be in the vocab
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab_words = list(dict.fromkeys([*specials, *TINY_WORDS, *"0123456789abcdefghijklmnopqrstuvwxyz"]))
    (backbone / "vocab.txt").write_text("\n".join(vocab_words) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab_words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(backbone)
    BertTokenizer(str(backbone / "vocab.txt")).save_pretrained(backbone)

    model_dir = folder / model_type
    model_dir.mkdir(exist_ok=True)
    vocab = Vocabulary(non_padded_namespaces=["*labels"])
    for label in ("", "ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"):
        vocab.add_token_to_namespace(label, f"{model_type}__ner_labels")
    for label in ("", "modify", "located_at", "suggestive_of"):
        vocab.add_token_to_namespace(label, f"{model_type}__relation_labels")
    vocab.save_to_files(str(model_dir / "vocabulary"))
    bert = {"type": "pretrained_transformer_mismatched", "model_name": str(backbone), "max_length": 64}
    model_config = {
        "type": "dygie",
        "embedder": {"token_embedders": {"bert": bert}},
        "feature_size": 8,
        "max_span_width": 4,
        "target_task": "relation",
        "feedforward_params": {"num_layers": 1, "hidden_dims": 16, "dropout": 0.0},
        "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
        "modules": {
            "coref": {"spans_per_word": 0.3, "max_antecedents": 10},
            "ner": {},
            "relation": {"spans_per_word": 0.5},
            "events": {
                "trigger_spans_per_word": 0.3,
                "argument_spans_per_word": 0.8,
                "loss_weights": {"trigger": 1.0, "arguments": 0.5},
            },
        },
        "initializer": {},
        "module_initializer": {},
    }
    config_json = {
        "dataset_reader": {"type": "dygie", "max_span_width": 4, "token_indexers": {"bert": bert}},
        "model": model_config,
        "vocabulary": {},
    }
    (model_dir / "config.json").write_text(json.dumps(config_json, indent=1))
    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {"bert": token_embedders.PretrainedTransformerMismatchedEmbedder(model_name=str(backbone), max_length=64)}
    )
    arguments = {
        k: v for k, v in model_config.items() if k not in ("type", "embedder", "initializer", "module_initializer")
    }
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **arguments)
    for parameter in model.parameters():
        if parameter.dim() > 1:  # large random weights, so that entities and relations are predicted at all
            torch.nn.init.normal_(parameter, std=1.0)
    torch.save(model.state_dict(), model_dir / "weights.th")
    return model_dir, backbone
