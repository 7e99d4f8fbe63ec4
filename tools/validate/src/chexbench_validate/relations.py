"""The expected relations, written down once as data (relations.yml beside this module), read and checked.

An entry:

    - id: fid-{extractor}-{ladder}          # unique after expansion; a folder-name-like word
      axis: fidelity                       # the plan's axis whose sets make the series
      for_each: {ladder: [blur, noise], extractor: [inception, raddino]}   # optional: one relation per combination,
                                           # each {name} in the strings below replaced
      metric: {stage: fidelity, name: FID, extractor: "{extractor}", subset: all}   # the metrics-table row of each
                                           # set (subset may name the set: "{set_id}"; extractor absent = null)
      controls: [original, "{ladder}"]     # the plan's controls in the series, ordered by level
      kind: monotone_increasing            # chexbench_validate.kinds.KINDS
      params: {}                           # the kind's parameters
      weights: "{extractor}"               # none, or the extractor / scorer whose weights decide stand-in status
      expected: FID rises with every {ladder} level        # one line for people
      gate: pass                           # --strict needs `pass` (default), or `no-fail` (then give `why`)
      why: ...
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from chexbench_common.errors import BadInputError

from .kinds import KINDS

GATES = ("pass", "no-fail")
RELATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
REQUIRED = ("id", "axis", "metric", "controls", "kind", "weights", "expected")


@dataclass(frozen=True)
class Relation:
    id: str
    axis: str
    stage: str
    metric: str
    extractor: str | None
    subset: str
    controls: tuple[str, ...]
    kind: str
    weights: str
    expected: str
    params: dict = field(default_factory=dict)
    gate: str = "pass"
    why: str = ""

    def subset_for(self, set_id: str) -> str:
        return self.subset.format(set_id=set_id)


def default_path() -> Path:
    return Path(str(resources.files("chexbench_validate") / "relations.yml"))


def _fill(value, names: dict):
    """Replace {name} of `names` in every string of `value` (lists and dicts included); other braces stay."""
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", str(text))
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def _expand(entry: dict) -> list[dict]:
    loops = entry.get("for_each") or {}
    keys = list(loops)
    combos = itertools.product(*(loops[k] for k in keys)) if keys else [()]
    body = {k: v for k, v in entry.items() if k != "for_each"}
    return [_fill(body, dict(zip(keys, combo, strict=True))) for combo in combos]


def _relation(entry: dict, where: str) -> Relation:
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise BadInputError(f"{where}: missing {', '.join(missing)}")
    metric = entry["metric"]
    if not isinstance(metric, dict) or not {"stage", "name"} <= set(metric):
        raise BadInputError(f"{where}: metric needs stage and name")
    if entry["kind"] not in KINDS:
        raise BadInputError(f"{where}: kind {entry['kind']!r} is not one of {', '.join(sorted(KINDS))}")
    gate = entry.get("gate", "pass")
    if gate not in GATES or (gate == "no-fail" and not entry.get("why")):
        raise BadInputError(f"{where}: gate must be pass or no-fail (no-fail with a `why`)")
    if not RELATION_ID.fullmatch(str(entry["id"])):
        raise BadInputError(f"{where}: id {entry['id']!r} must use letters, digits and . _ + -")
    controls = entry["controls"]
    if not isinstance(controls, list) or not controls:
        raise BadInputError(f"{where}: controls must be a non-empty list")
    return Relation(
        id=str(entry["id"]),
        axis=str(entry["axis"]),
        stage=str(metric["stage"]),
        metric=str(metric["name"]),
        extractor=None if metric.get("extractor") is None else str(metric["extractor"]),
        subset=str(metric.get("subset", "all")),
        controls=tuple(str(c) for c in controls),
        kind=str(entry["kind"]),
        weights=str(entry["weights"]),
        expected=str(entry["expected"]),
        params=dict(entry.get("params") or {}),
        gate=gate,
        why=str(entry.get("why", "")),
    )


def load_relations(path: Path | None = None) -> list[Relation]:
    """Every relation of the file, expanded; one clear error per bad entry or duplicated id."""
    path = path or default_path()
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from None
    entries = data.get("relations") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BadInputError(f"{path}: expected a mapping with a list under `relations`")
    relations, seen = [], set()
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise BadInputError(f"{path}: relation {i} is not a mapping")
        for expanded in _expand(entry):
            relation = _relation(expanded, f"{path}: relation {i} ({expanded.get('id', '?')})")
            if relation.id in seen:
                raise BadInputError(f"{path}: relation id {relation.id!r} appears twice")
            seen.add(relation.id)
            relations.append(relation)
    return relations
