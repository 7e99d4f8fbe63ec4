"""RadEval 2.2.1 evaluated as the stage's scorer (README, "RadEval"), on the real Indiana/OpenI reports that the
torchxrayvision wheel ships (read from the installed package at test time, never copied): what of it runs offline,
from local weights, and whether its numbers equal ours on identical inputs. Each test pins one reason the stage keeps
its own scorers; when a newer radeval is pinned, a failure here says which reason no longer holds. Runs in
.venv-radeval (`make test-radeval`: the main environment plus radeval); skipped in the main environment, which does
not install radeval."""

import importlib.metadata
import json
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("radeval", reason="radeval runs only in .venv-radeval: `make test-radeval`")

from chexbench_llava_report.chexbert import CONDITIONS, FIVE, CheXbert, LabelCounts, binary, f1_scores  # noqa: E402
from chexbench_llava_report.text_metrics import CorpusBleu, rouge_l  # noqa: E402

OPENI = "torchxrayvision/data/NLMCXR_reports.tgz"
CHEXBERT_PAIRS = 300  # OpenI pairs labelled by both CheXbert implementations (the tiny model is slow on 2 cores)


def _openi_findings() -> list[tuple[str, str]]:
    """(findings, impression) of every OpenI report with findings, in report-number order."""
    try:
        archive = Path(importlib.metadata.distribution("torchxrayvision").locate_file(OPENI))
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("torchxrayvision (requirements/assets.txt) is not installed: it ships the OpenI reports")
    rows = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".xml")):
                continue
            root = ET.parse(tar.extractfile(member)).getroot()
            text = {}
            for label in ("FINDINGS", "IMPRESSION"):
                node = root.find(f".//AbstractText[@Label='{label}']")
                text[label] = " ".join((node.text or "").split()) if node is not None else ""
            if text["FINDINGS"]:
                rows.append((int(re.search(r"\d+", member.name).group()), text["FINDINGS"], text["IMPRESSION"]))
    return [(findings, impression) for _, findings, impression in sorted(rows)]


@pytest.fixture(scope="module")
def openi_pairs() -> tuple[list[str], list[str]]:
    """(references, generated) over the OpenI reports with findings: every tenth generation is its own reference,
    every third (else) the same report's impression, the rest the next report's findings."""
    rows = _openi_findings()
    assert len(rows) > 3000, f"expected the wheel's ~3,400 reports with findings, found {len(rows)}"
    refs = [findings for findings, _ in rows]
    gens = []
    for i, (findings, impression) in enumerate(rows):
        if i % 10 == 0:
            gens.append(findings)
        elif i % 3 == 0 and impression:
            gens.append(impression)
        else:
            gens.append(rows[(i + 1) % len(rows)][0])
    return refs, gens


def test_rouge_l_equals_ours_with_the_stemmer_on(openi_pairs):
    """RadEval's ROUGE-L is rouge-score's per-report F with the Porter stemmer always on: equal to ours with
    --rouge-stemmer, and not to our default (stemmer off, as LLaVA-Rad scores)."""
    from radeval import RadEval

    refs, gens = openi_pairs
    theirs = np.array(RadEval(metrics=["rouge"], per_sample=True, show_progress=False)(refs=refs, hyps=gens)["rougeL"])
    np.testing.assert_array_equal(theirs, rouge_l(gens, refs, stemmer=True))
    unstemmed = rouge_l(gens, refs, stemmer=False)
    assert (theirs != unstemmed).sum() > 100


def test_bleu_is_whitespace_bleu_not_sacrebleu(openi_pairs):
    """RadEval's BLEU (the COCO caption scorer) splits on whitespace; ours is sacrebleu's 13a, which splits off
    punctuation, as LLaVA-Rad reports it. On OpenI findings the two differ by several points; RadEval's equals nltk's
    corpus BLEU on whitespace tokens."""
    from nltk.translate.bleu_score import corpus_bleu
    from radeval.metrics.bleu.bleu import Bleu

    refs, gens = openi_pairs
    for order, tolerance in ((1, 1e-9), (4, 1e-3)):  # COCO's BLEU adds 1e-9 / 1e-15 to each n-gram ratio
        theirs = Bleu(n=order)(refs, gens)[0]
        whitespace = corpus_bleu([[r.split()] for r in refs], [g.split() for g in gens], weights=(1 / order,) * order)
        assert theirs == pytest.approx(whitespace, abs=tolerance)
        ours = CorpusBleu.compute(gens, refs, order).score() / 100
        assert abs(theirs - ours) > 0.02, (order, theirs, ours)


def _radeval_chexbert(checkpoint: Path, tokenizer_dir: Path):
    """RadEval's CheXbert evaluator around a local checkpoint: its own labeler and evaluator classes, built without
    its constructor, which only downloads (StanfordAIMI/RRG_scorers, bert-base-uncased)."""
    import torch
    from radeval.metrics._chexbert_base import BaseBertLabeler
    from radeval.metrics.f1chexbert.f1chexbert import F1CheXbert
    from transformers import BertConfig, BertModel, BertTokenizer

    state = {
        k.removeprefix("module."): v for k, v in torch.load(checkpoint, weights_only=True)["model_state_dict"].items()
    }
    backbone = lambda: BertModel(BertConfig.from_pretrained(tokenizer_dir))  # noqa: E731
    with pytest.raises(RuntimeError, match="position_ids"):  # it loads strictly: the saved buffer is refused
        BaseBertLabeler(device="cpu", backbone=backbone(), num_4way_heads=13, state_dict=dict(state))
    state.pop("bert.embeddings.position_ids")
    labeler = BaseBertLabeler(device="cpu", backbone=backbone(), num_4way_heads=13, state_dict=state).eval()
    evaluator = F1CheXbert.__new__(F1CheXbert)
    torch.nn.Module.__init__(evaluator)
    evaluator._init_evaluator(
        model=labeler, tokenizer=BertTokenizer.from_pretrained(tokenizer_dir), device="cpu", batch_size=16
    )
    return evaluator


def test_chexbert_labels_equal_ours_and_its_f1_fails_on_our_scikit_learn(openi_pairs, report_pairs, tiny_chexbert):
    """On the same random checkpoint, RadEval's CheXbert labels every report as ours does (OpenI findings and the
    fixture's, with its > 512-token report). Its F1 (`forward`) stops on scikit-learn 1.9 (a private sparse helper
    it calls changed); the classification report it would compute from its labels, uncertain counted as positive
    (the only mapping it has; its per-sample output is label accuracy, not labels), equals ours."""
    import torch
    from sklearn.metrics import classification_report

    refs = openi_pairs[0][:CHEXBERT_PAIRS] + report_pairs[0]
    gens = openi_pairs[1][:CHEXBERT_PAIRS] + report_pairs[1]
    theirs = _radeval_chexbert(*tiny_chexbert)
    ours = CheXbert.load(*tiny_chexbert, torch.device("cpu")).label(refs + gens, batch_size=16)
    assert len(set(map(tuple, ours))) > 10, "the tiny model should give varied labels"
    # its classification mode: 1 positive, -1 uncertain, 0 blank or negative; ours: 0 blank 1 pos 2 neg 3 uncertain
    np.testing.assert_array_equal(
        theirs.get_labels(refs + gens, mode="classification"), np.select([ours == 1, ours == 3], [1, -1], 0)
    )
    with pytest.raises(AttributeError, match="format"):
        theirs.forward(gens[:20], refs[:20])
    n = len(refs)
    rrg = np.array(theirs.get_labels(refs + gens, mode="rrg"))
    counts = LabelCounts.of(binary(ours[:n], True), binary(ours[n:], True)).totals()
    five = [CONDITIONS.index(c) for c in FIVE]
    for columns in (list(range(len(CONDITIONS))), five):
        names = [theirs.TARGET_NAMES[i] for i in columns]
        report = classification_report(rrg[:n, columns], rrg[n:, columns], target_names=names, output_dict=True)
        expected = f1_scores(*counts, columns)
        assert report["micro avg"]["f1-score"] == pytest.approx(float(expected["micro"]), abs=1e-12)
        assert report["macro avg"]["f1-score"] == pytest.approx(float(expected["macro"]), abs=1e-12)


# Run in a fresh interpreter with empty caches: which metric can be given local weights, which builds offline.
_PROBE = """
import inspect, json, os
from radeval import RadEval
from radeval.metrics._registry import get_metric_class
out = {}
for name in ("bertscore", "radeval_bertscore", "f1chexbert", "radgraph", "radcliq", "ratescore"):
    try:
        cls = get_metric_class(name)
    except Exception as exc:
        out[name] = {"import": f"{type(exc).__name__}: {exc}"}
        continue
    entry = out[name] = {"parameters": list(inspect.signature(cls.__init__).parameters)[1:]}
    try:
        RadEval(metrics=[name], show_progress=False)
        entry["offline"] = "built"
    except Exception as exc:
        entry["offline"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_model_metrics_take_no_local_weights_and_do_not_build_offline(tmp_path):
    """Every model-based metric's RadEval class takes no options (no weight path): its weights are hub ids in the
    code (bert-base-uncased + StanfordAIMI/RRG_scorers chexbert.pth, distilbert-base-uncased, IAMJB/RadEvalModernBERT,
    distilroberta-base, radgraph/radgraph-xl archives), so offline it only fails. RadGraph and RadCliQ fail before
    that: the wheel is `radeval` but its vendored RadGraph imports `RadEval.metrics...`. RaTEScore does not import:
    medspacy 1.3.1 needs spacy < 3.8 on Python 3.11, whose thinc 8.2 binary is built for numpy 1 (we pin numpy 2)."""
    cache = {"HOME": tmp_path, "XDG_CACHE_HOME": tmp_path / "cache", "HF_HOME": tmp_path / "hf"}
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        **{k: str(v) for k, v in cache.items()},
    }
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("bertscore", "radeval_bertscore", "f1chexbert", "radgraph", "radcliq"):
        assert probe[name]["parameters"] == [], (name, probe[name])
    for name in ("bertscore", "radeval_bertscore", "f1chexbert"):
        assert probe[name]["offline"].startswith("OSError") and "cached files" in probe[name]["offline"], probe[name]
    for name in ("radgraph", "radcliq"):
        assert probe[name]["offline"] == "ModuleNotFoundError: No module named 'RadEval'", probe[name]
    assert probe["ratescore"]["import"].startswith("ValueError: numpy.dtype size changed"), probe["ratescore"]
    assert int(np.__version__.split(".")[0]) == 2
    assert importlib.metadata.version("spacy").startswith("3.7.")


def test_bertscore_runs_from_a_local_folder_only_without_its_rescaling(tmp_path):
    """The scorer class behind RadEval's BERTScore accepts a local model folder, but the rescaling baseline its
    metric uses is looked up by hub name, so a local folder scores only un-rescaled values."""
    from radeval.metrics.bertscore.bertscore import BertScore
    from transformers import BertTokenizer, DistilBertConfig, DistilBertModel

    folder = tmp_path / "distilbert-base-uncased"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "heart", "is", "normal", "lungs", "are", "clear"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), model_max_length=512).save_pretrained(folder)
    config = DistilBertConfig(vocab_size=len(words), dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(folder)
    refs, gens = ["the heart is normal", "lungs are clear"], ["lungs are clear", "lungs are clear"]
    mean, per_sample = BertScore(model_type=str(folder), num_layers=2, rescale_with_baseline=False)(refs, gens)
    assert per_sample[1] == pytest.approx(1.0, abs=1e-6) and per_sample[0] < 1.0
    with pytest.raises(ValueError, match="Baseline not found"):
        BertScore(model_type=str(folder), num_layers=2, rescale_with_baseline=True)(refs, gens)
