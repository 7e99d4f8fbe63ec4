"""The isolated scoring environment (.venv-radgraph, `make test-radgraph`): F1-RadGraph through our CLI on a tiny
random RadGraph built with the package's own classes, equal to the package called directly; and the native CheXbert
equal to the reference package f1chexbert on the same tiny random checkpoint and strings. Skipped in the main
environment, which has neither package (transformers 5)."""

import json
import tarfile

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("radgraph", reason="radgraph runs only in .venv-radgraph: `make test-radgraph`")
pytest.importorskip("f1chexbert", reason="f1chexbert runs only in .venv-radgraph: `make test-radgraph`")

from chexbench_llava_report.cli import main  # noqa: E402
from chexbench_llava_report.radgraph_scorer import write_tiny_radgraph  # noqa: E402
from click.testing import CliRunner  # noqa: E402


@pytest.fixture(scope="module")
def tiny_radgraph(tmp_path_factory):
    return write_tiny_radgraph(tmp_path_factory.mktemp("tiny-radgraph"), "radgraph", seed=0)


def _predictions(path, refs, gens):
    pd.DataFrame({"prompt_id": range(len(refs)), "reference": refs, "generated": gens}).to_parquet(path)
    return path


def test_cli_f1_radgraph_equals_the_package(tmp_path, tiny_radgraph, report_pairs):
    from radgraph import F1RadGraph

    model_dir, backbone = tiny_radgraph
    refs, gens = (list(x[:7]) for x in report_pairs)  # not the 600-token one: slow with random weights
    gens[1] = refs[1]
    predictions = _predictions(tmp_path / "p.parquet", refs, gens)
    args = ["score", "--results", str(tmp_path / "R"), "--model", "m", "--predictions", f"p10={predictions}"]
    result = CliRunner().invoke(main, [*args, "--radgraph-model", str(model_dir), "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    stage = tmp_path / "R/m/default/llava-report"
    metrics = pd.read_parquet(stage / "metrics.parquet").set_index("metric")
    samples = pd.read_parquet(stage / "per_sample.parquet")
    direct = F1RadGraph(reward_level="partial", model_type="radgraph", model_cache_dir=str(model_dir.parent), cuda=-1)
    mean, rewards, hyp_annotations, _ = direct(refs=refs, hyps=gens)
    assert any(a["entities"] for a in hyp_annotations), "the tiny model should find entities"
    np.testing.assert_allclose(samples["radgraph_partial"], rewards, atol=1e-12)
    assert metrics.loc["F1-RadGraph", "value"] == pytest.approx(mean, abs=1e-12)
    assert metrics.loc["F1-RadGraph", "ci_low"] <= metrics.loc["F1-RadGraph", "ci_high"]
    assert "radgraph 0.1.18 radgraph partial" in metrics.loc["F1-RadGraph", "note"]
    assert rewards[3] == 0.0 and rewards[1] == 1.0  # empty generation; identical report
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["scorers"]["radgraph"]["model_type"] == "radgraph" and manifest["weights"]["radgraph"]


def test_archive_with_a_hub_backbone_runs_offline_with_a_local_one(tmp_path, tiny_radgraph, report_pairs):
    """The published archive names its backbone by Hub id; --radgraph-backbone points it at a local folder."""
    model_dir, backbone = tiny_radgraph
    packed = tmp_path / "packed" / "radgraph"
    packed.mkdir(parents=True)
    config = json.loads((model_dir / "config.json").read_text())
    config["dataset_reader"]["token_indexers"]["bert"]["model_name"] = "some-org/not-downloadable-here"
    config["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = "some-org/not-downloadable-here"
    (packed / "config.json").write_text(json.dumps(config))
    archive = tmp_path / "radgraph.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(packed / "config.json", "radgraph/config.json")
        tar.add(model_dir / "weights.th", "radgraph/weights.th")
        tar.add(model_dir / "vocabulary", "radgraph/vocabulary")
    refs, gens = (list(x[:4]) for x in report_pairs)
    predictions = _predictions(tmp_path / "p.parquet", refs, gens)
    base = ["score", "--results", str(tmp_path / "R"), "--model", "m", "--predictions", str(predictions)]
    with_local = CliRunner().invoke(
        main, [*base, "--radgraph-model", str(archive), "--radgraph-backbone", str(backbone), "--bootstrap", "20"]
    )
    assert with_local.exit_code == 0, with_local.output
    from_folder = CliRunner().invoke(
        main,
        [*base, "--run-id", "folder", "--radgraph-model", str(model_dir), "--bootstrap", "20"],
    )
    assert from_folder.exit_code == 0, from_folder.output
    values = [
        pd.read_parquet(tmp_path / f"R/m/{run}/llava-report/metrics.parquet").set_index("metric").loc["F1-RadGraph"]
        for run in ("default", "folder")
    ]
    assert values[0]["value"] == values[1]["value"]


def test_native_chexbert_equals_f1chexbert(tmp_path, tiny_chexbert, report_pairs):
    """f1chexbert 0.0.2's labeler and its classification report (uncertain -> positive, its "rrg" mode) against
    ours, on the same tiny random checkpoint. Its forward() no longer runs on current scikit-learn (its accuracy
    part unpacks a private helper), so its own labels are put through sklearn exactly as forward() does."""
    import f1chexbert.f1chexbert as reference
    import torch
    from chexbench_llava_report.chexbert import CONDITIONS, FIVE, CheXbert, LabelCounts, binary, f1_scores
    from sklearn.metrics import classification_report
    from transformers import AutoConfig, BertTokenizer

    checkpoint, tokenizer_dir = tiny_chexbert
    refs, gens = report_pairs
    load_tokenizer, load_config = BertTokenizer.from_pretrained, AutoConfig.from_pretrained
    patch = pytest.MonkeyPatch()
    # f1chexbert hard-codes the Hub names and its cache folder: point them at the local tiny files
    patch.setattr(reference.BertTokenizer, "from_pretrained", lambda *a, **k: load_tokenizer(str(tokenizer_dir)))
    patch.setattr(reference.AutoConfig, "from_pretrained", lambda *a, **k: load_config(str(tokenizer_dir)))
    patch.setattr(reference, "CACHE_DIR", str(checkpoint.parent))
    try:
        scorer = reference.F1CheXbert(device="cpu")
        theirs = [scorer.get_label(r.strip(), mode="classification") for r in refs + gens]
        ref_rrg = [scorer.get_label(r.strip()) for r in refs]
        gen_rrg = [scorer.get_label(g.strip()) for g in gens]
    finally:
        patch.undo()
    ours = CheXbert.load(checkpoint, tokenizer_dir, torch.device("cpu"))
    ref_classes, gen_classes = ours.label(refs, 8), ours.label(gens, 8)
    code = {0: "", 1: 1, 2: 0, 3: -1}  # f1chexbert's "classification" mode values
    assert [[code[int(c)] for c in row] for row in np.vstack([ref_classes, gen_classes])] == theirs
    totals = LabelCounts.of(binary(ref_classes, True), binary(gen_classes, True)).totals()
    five = [CONDITIONS.index(c) for c in FIVE]
    report = classification_report(ref_rrg, gen_rrg, output_dict=True)
    index = scorer.target_names_5_index
    report5 = classification_report(
        [np.array(r)[index] for r in ref_rrg], [np.array(g)[index] for g in gen_rrg], output_dict=True
    )
    for table, columns in ((report, range(14)), (report5, five)):
        mine = f1_scores(*totals, columns)
        assert mine["micro"] == pytest.approx(table["micro avg"]["f1-score"], abs=1e-12)
        assert mine["macro"] == pytest.approx(table["macro avg"]["f1-score"], abs=1e-12)
