"""`make validate`'s command chain (a dry run): the pool, the split (three ways for the privacy, utility and
alignment axes), each axis's sets through the ordinary stages, then judge, the report page and the --strict gate."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def dry_run(*args: str, target: str = "validate", jobs: int = 1) -> str:
    """make -n <target>, by default one job at a time (side by side, the axes' commands interleave)."""
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", target, f"VALIDATE_JOBS={jobs}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_embedded_default_chain(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}")
    steps = [
        f"chexbench-bench validation-pool --results {tmp_path} --run-id validate",
        "chexbench-validate split",
        "chexbench-validate build fidelity",
        "chexbench-validate union --plan",
        f"chexbench-generate import --csv {tmp_path}/demo/validate/sets/fidelity-all/images.csv",
        "chexbench-embed run",
        f"chexbench-validate slice --union {tmp_path}/demo/validate/sets/fidelity-all/images.csv",
        "chexbench-fidelity run",
        "chexbench-validate build reports",
        "chexbench-llava-report score",
        "chexbench-validate judge",
        "chexbench-report run",
        "--quiet --strict",
    ]
    where = [text.index(step) for step in steps]
    assert where == sorted(where)
    assert "--extractor inception --extractor raddino=" in text and "--bootstrap 200" in text
    # radiomics only on the union of the FRD controls' sets
    assert "--axis fidelity --out " + f"{tmp_path}/demo/validate/sets/fidelity-frd" in text
    assert "--control original --control blur --control noise" in text and "--extractor radiomics" in text
    assert f"--chexbert {tmp_path}/demo/validate/models/tiny-chexbert/chexbert.pth" in text


def test_registry_model_uses_the_pool_split_and_registry_pins(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}", "MODEL=sana", f"PROMPTS={tmp_path}/prompts.parquet")
    assert "chexbench-bench assets check raddino" in text
    assert f"split --pool-prompts {tmp_path}/prompts.parquet" in text
    assert "--source pool" in text and "--registry assets/models.yml" in text
    assert "demo-inputs" not in text


def test_privacy_utility_and_alignment_run_through_their_stages_before_the_judge(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}")
    assert "--split reference=0.5 --split holdout=0.25 --split unseen=0.25" in text
    judge = text.index("chexbench-validate judge")
    for chain in (
        ["chexbench-privacy sample", "chexbench-validate build privacy", "--run-id validate-privacy-all"],
        ["--run-id validate-privacy-all", "chexbench-privacy run"],
        ["chexbench-validate build utility", "chexbench-classify run"],
        ["chexbench-validate build alignment", "chexbench-align run"],
    ):
        where = [text.index(step) for step in chain]
        assert where == sorted(where) and where[-1] < judge, chain
    assert f"--reid-weights {tmp_path}/demo/validate/models/tiny-reid.pth" in text
    assert "--setting all_synthetic" in text and "--no-conditional" in text
    assert "--controls 32" in text and "-n 32" in text


def test_a_registry_model_checks_the_reid_and_biovil_weights(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}", "MODEL=sana", f"PROMPTS={tmp_path}/prompts.parquet")
    assert "assets check reid" in text and "assets check biovil-t" in text
    assert "tiny-reid" not in text and "--controls 500" in text


def test_the_axes_and_their_sets_run_side_by_side_sharing_validate_jobs(tmp_path):
    whole = dry_run(f"RESULTS={tmp_path}", jobs=3)
    assert "make --no-print-directory -o setup -j3 validate-run" in whole
    # under that make's job slots the axes' sub-makes take no -j of their own; an axis made alone (a Slurm job) does
    assert "make --no-print-directory  validate-fidelity-union/" in whole
    alone = dry_run(f"RESULTS={tmp_path}", target="validate-fidelity", jobs=3)
    assert "make --no-print-directory -j3 validate-fidelity-union/" in alone
