"""relations.yml: read, expanded, and every malformed entry refused with one line naming it."""

from __future__ import annotations

import pytest
from chexbench_common.errors import BadInputError
from chexbench_validate.kinds import KINDS
from chexbench_validate.relations import load_relations


def test_packaged_relations_expand_and_use_known_kinds():
    relations = load_relations()
    ids = [r.id for r in relations]
    assert len(ids) == len(set(ids))
    assert {"fid-inception-blur", "fid-raddino-resample", "frd-jpeg", "recall-inception-collapse"} <= set(ids)
    fid = next(r for r in relations if r.id == "fid-inception-noise")
    assert (fid.stage, fid.metric, fid.extractor, fid.controls) == (
        "fidelity",
        "FID",
        "inception",
        ("original", "noise"),
    )
    assert fid.weights == "inception" and fid.kind == "monotone_increasing"
    assert all(r.kind in KINDS for r in relations)
    bleu = next(r for r in relations if r.id == "BLEU-4-references")
    assert bleu.subset_for("reports-other") == "reports-other"


GOOD = """
relations:
  - id: fid-{ladder}
    axis: fidelity
    for_each: {ladder: [blur, noise]}
    metric: {stage: fidelity, name: FID, extractor: inception}
    controls: [original, "{ladder}"]
    kind: monotone_increasing
    weights: inception
    expected: FID rises with {ladder}
"""


def test_for_each_expands_every_string(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text(GOOD)
    relations = load_relations(path)
    assert [(r.id, r.controls, r.expected) for r in relations] == [
        ("fid-blur", ("original", "blur"), "FID rises with blur"),
        ("fid-noise", ("original", "noise"), "FID rises with noise"),
    ]
    assert relations[0].subset == "all" and relations[0].gate == "pass"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("kind: monotone_increasing", "kind: goes_up"), "kind 'goes_up' is not one of"),
        (("for_each: {ladder: [blur, noise]}", "for_each: {ladder: [blur, blur]}"), "appears twice"),
        (("    weights: inception\n", ""), "missing weights"),
        (("    expected:", "    gate: no-fail\n    expected:"), "no-fail with a `why`"),
        (("id: fid-{ladder}", "id: fid {ladder}"), "must use letters"),
        (('controls: [original, "{ladder}"]', "controls: []"), "controls must be a non-empty list"),
        (("metric: {stage: fidelity, name: FID, extractor: inception}", "metric: FID"), "metric needs stage"),
    ],
)
def test_malformed_entries_are_refused(tmp_path, change, message):
    path = tmp_path / "r.yml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(BadInputError, match=message):
        load_relations(path)


def test_not_yaml_is_one_line(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text("relations: [\n")
    with pytest.raises(BadInputError, match="cannot be read as YAML"):
        load_relations(path)
