"""Fast checks of the Slurm templates without a scheduler (the real run is `make slurm-test`).

compose/hpc/submit.sh --dry-run prints the sbatch commands it would run; the job body (compose/hpc/common.sh) runs
against stand-in console scripts in a throw-away venv (VENV=... through MAKE_VARS), so what is checked is the real
make command line, quoting, exit codes and jobs.tsv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HPC = ROOT / "compose" / "hpc"
STAGES = ("generate", "embed", "fidelity")
TEMPLATE = "compose/hpc/stage.sbatch"


def stage_table() -> dict[str, dict[str, str]]:
    """compose/hpc/stages.tsv (rendered from tools/<stage>/stage.yml; tests/test_containers.py checks the drift)."""
    lines = [ln for ln in (HPC / "stages.tsv").read_text().splitlines() if not ln.startswith("#")]
    header = lines[0].split("\t")
    return {row[0]: dict(zip(header, row, strict=True)) for row in (ln.split("\t") for ln in lines[1:])}


FAKE_SCRIPT = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({"argv": sys.argv, "cache": os.environ.get("CHEXBENCH_CACHE_DIR"),
                        "offline": os.environ.get("HF_HUB_OFFLINE"), "tqdm": os.environ.get("TQDM_DISABLE")}) + "\\n")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def fake_venv(tmp_path):
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    for stage in STAGES:
        script = bindir / f"chexbench-{stage}"
        script.write_text(FAKE_SCRIPT)
        script.chmod(0o755)
    return tmp_path / "venv"


def submit(tmp_path: Path, venv: Path, *, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    full |= {
        "MODEL": "m",
        "RUN_ID": "r",
        "RESULTS": str(tmp_path / "Results"),
        "RUNNER": "local",
        "NUM_SHARDS": "3",
        "MAKE_VARS": f"VENV={venv}",
    } | env
    result = subprocess.run(
        ["bash", str(HPC / "submit.sh"), "--dry-run"],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def sbatch_calls(result: subprocess.CompletedProcess) -> list[dict]:
    """The dry run's sbatch commands as {name, template, options}."""
    calls = []
    for line in result.stderr.splitlines():
        if line.startswith("sbatch "):
            tokens = shlex.split(line)
            opts = {}
            for tok in tokens[1:-1]:
                key, _, value = tok.partition("=")
                opts[key] = value
            calls.append({"name": opts["--job-name"], "template": tokens[-1], "opts": opts})
    return calls


def test_chain_order_dependencies_arrays_and_logs(tmp_path, fake_venv):
    result = submit(tmp_path, fake_venv, EMBED_SBATCH="--gres=gpu:a100:1", SBATCH_ARGS="--partition=gpu")
    printed = [line.split() for line in result.stdout.splitlines()]
    calls = sbatch_calls(result)
    names = [
        "chexbench-generate",
        "chexbench-generate-merge",
        "chexbench-embed",
        "chexbench-embed-merge",
        "chexbench-fidelity",
    ]
    assert [c["name"] for c in calls] == [p[0] for p in printed] == names
    ids = [p[1] for p in printed]
    assert "--dependency" not in calls[0]["opts"]
    for prev, call in zip(ids, calls[1:], strict=False):
        assert call["opts"]["--dependency"] == f"afterok:{prev}"
        assert call["opts"]["--kill-on-invalid-dep"] == "yes"
    logs = tmp_path / "Results" / "m" / "r" / "slurm-logs"
    table = stage_table()
    for call in calls:
        stage = call["name"].removeprefix("chexbench-").removesuffix("-merge")
        merge = call["name"].endswith("-merge")
        array = not merge and table[stage]["shards"] == "true"
        assert call["opts"]["--output"] == str(logs / ("%x-%A_%a.out" if array else "%x-%j.out"))
        assert call["opts"].get("--array") == ("0-2" if array else None)
        assert call["opts"]["--chdir"] == str(ROOT)
        assert call["opts"]["--partition"] == "gpu"
        assert call["opts"]["--export"] == f"ALL,STAGE={stage},CHEXBENCH_SUBCMD={'merge' if merge else 'run'}"
        if merge:
            assert "--gres" not in call["opts"] and call["opts"]["--mem"] == "8G"
            continue
        # the stage's resources from stage.yml; GPU iff the stage declares one; the per-job option comes last
        for key, option in (("cpus", "--cpus-per-task"), ("mem", "--mem"), ("time", "--time")):
            assert call["opts"][option] == table[stage][key], (stage, option)
        wanted_gres = None if table[stage]["gpu"] == "none" else "gpu:1"
        assert call["opts"].get("--gres") == ("gpu:a100:1" if stage == "embed" else wanted_gres), stage
    assert {c["template"] for c in calls} == {TEMPLATE}
    assert not logs.exists()  # a dry run writes nothing


def mark_done(tmp_path: Path, *stages: str) -> None:
    for stage in stages:
        d = tmp_path / "Results" / "m" / "r" / stage
        d.mkdir(parents=True)
        (d / "_SUCCESS").write_text("")


def test_finished_stages_are_not_resubmitted(tmp_path, fake_venv):
    mark_done(tmp_path, "generate")
    calls = sbatch_calls(submit(tmp_path, fake_venv))
    assert [c["name"] for c in calls] == ["chexbench-embed", "chexbench-embed-merge", "chexbench-fidelity"]
    assert "--dependency" not in calls[0]["opts"]

    mark_done(tmp_path, "embed", "fidelity")
    result = submit(tmp_path, fake_venv)
    assert sbatch_calls(result) == [] and result.stdout == ""
    assert "nothing to submit" in result.stderr


def test_a_rerun_stage_reruns_everything_after_it(tmp_path, fake_venv):
    mark_done(tmp_path, "embed", "fidelity")  # generate lost its _SUCCESS: embed and fidelity must follow it
    calls = sbatch_calls(submit(tmp_path, fake_venv))
    assert [c["name"] for c in calls][::2] == ["chexbench-generate", "chexbench-embed", "chexbench-fidelity"]


def test_single_shard_has_no_merge_and_stages_subset(tmp_path, fake_venv):
    calls = sbatch_calls(submit(tmp_path, fake_venv, NUM_SHARDS="1", STAGES="embed fidelity"))
    assert [c["name"] for c in calls] == ["chexbench-embed", "chexbench-fidelity"]
    assert "--array" not in calls[0]["opts"]  # one shard: a plain job, never an implicit shard


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NUM_SHARDS": "0"}, "NUM_SHARDS must be a positive integer"),
        ({"RUNNER": "podman"}, "RUNNER must be local, docker or apptainer"),
        ({"STAGES": "generate radiology-gpt"}, "unknown stage 'radiology-gpt' (declared in compose/hpc/stages.tsv: "),
        ({"MAKE_VARS": "VENV=/nonexistent"}, "/nonexistent/bin/chexbench-generate is missing: run 'make setup'"),
        ({"RUNNER": "apptainer", "MAKE_VARS": "SIF_DIR=/nonexistent"}, "make sif STAGE=generate"),
    ],
)
def test_preflight_refuses_what_cannot_start(tmp_path, fake_venv, env, message):
    result = submit(tmp_path, fake_venv, check=False, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert sbatch_calls(result) == []


def test_apptainer_preflight_passes_when_the_sifs_exist(tmp_path, fake_venv):
    sif_dir = tmp_path / "sif"
    sif_dir.mkdir()
    for stage in STAGES:
        (sif_dir / f"chexbench-{stage}_7.7.7.sif").write_text("")
    calls = sbatch_calls(
        submit(tmp_path, fake_venv, RUNNER="apptainer", MAKE_VARS=f"SIF_DIR={sif_dir} IMAGE_TAG=7.7.7")
    )
    assert len(calls) == 5


def run_job(tmp_path: Path, venv: Path, stage: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run compose/hpc/stage.sbatch as Slurm would (bash, with the SLURM_* variables), against the stand-in scripts."""
    calls = tmp_path / "calls.jsonl"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "CHEXBENCH_"))}
    full |= {
        "CHEXBENCH_ROOT": str(ROOT),
        "MODEL": "m",
        "RUN_ID": "r",
        "RESULTS": str(tmp_path / "Results"),
        "RUNNER": "local",
        "NUM_SHARDS": "2",
        "MAKE_VARS": f"VENV={venv} CACHE_DIR={tmp_path}/cache",
        "FAKE_CALLS": str(calls),
        "SLURM_JOB_ID": "41",
        "SLURM_JOB_NAME": f"chexbench-{stage}",
        "STAGE": stage,
    } | env
    full = {k: v for k, v in full.items() if v is not None}
    result = subprocess.run(
        ["bash", str(ROOT / TEMPLATE)], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=120
    )
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, recorded


def test_array_task_runs_its_shard_with_the_stage_options(tmp_path, fake_venv):
    result, calls = run_job(
        tmp_path,
        fake_venv,
        "embed",
        SLURM_ARRAY_JOB_ID="40",
        SLURM_ARRAY_TASK_ID="1",
        EMBED_ARGS="--extractor inception --images Results/m/r/generate/images.parquet",
    )
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1
    assert calls[0]["argv"][1:] == [
        "run",
        "--results",
        str(tmp_path / "Results"),
        "--model",
        "m",
        "--run-id",
        "r",
        "--shard",
        "auto",
        "--extractor",
        "inception",
        "--images",
        "Results/m/r/generate/images.parquet",
    ]
    assert Path(calls[0]["argv"][0]) == fake_venv / "bin" / "chexbench-embed"
    # the Makefile's environment reaches the stage; progress bars are off in batch logs
    assert calls[0]["cache"] == f"{tmp_path}/cache" and calls[0]["offline"] == "1" and calls[0]["tqdm"] == "1"
    rows = (tmp_path / "Results/m/r/slurm-logs/jobs.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:7] == ["time", "job_name", "job_id", "array_job_id", "task", "stage", "exit_code"]
    assert rows[1].split("\t")[1:7] == ["chexbench-embed", "41", "40", "1", "embed run", "0"]


def test_generate_names_the_registry_model_and_the_output_model(tmp_path, fake_venv):
    result, calls = run_job(
        tmp_path,
        fake_venv,
        "generate",
        SLURM_ARRAY_JOB_ID="40",
        SLURM_ARRAY_TASK_ID="0",
        GENERATOR="sana",
        MODEL="sana-run",
        GENERATE_ARGS="--prompts p.parquet",
    )
    assert result.returncode == 0, result.stderr
    argv = calls[0]["argv"]
    # --model is the output folder, --generator the registry model
    assert argv[argv.index("--model") + 1] == "sana-run" and argv[argv.index("--generator") + 1] == "sana"
    assert "--model-name" not in argv
    assert argv[argv.index("--shard") + 1] == "auto" and argv[-2:] == ["--prompts", "p.parquet"]


def test_the_stage_exit_code_reaches_slurm_and_jobs_tsv(tmp_path, fake_venv):
    result, calls = run_job(tmp_path, fake_venv, "embed", CHEXBENCH_SUBCMD="merge", FAKE_EXIT="5")
    assert result.returncode == 5  # not make's generic 2
    assert calls[0]["argv"][1:] == [
        "merge",
        "--results",
        str(tmp_path / "Results"),
        "--model",
        "m",
        "--run-id",
        "r",
        "--num-shards",
        "2",
    ]
    row = (tmp_path / "Results/m/r/slurm-logs/jobs.tsv").read_text().splitlines()[1].split("\t")
    assert row[5:7] == ["embed merge", "5"]


def test_a_single_job_is_never_sharded_implicitly(tmp_path, fake_venv):
    result, calls = run_job(tmp_path, fake_venv, "fidelity", FIDELITY_ARGS="--bootstrap 10")
    assert result.returncode == 0, result.stderr
    assert calls[0]["argv"][1:] == ["run", "--results", str(tmp_path / "Results"), "--model", "m", "--run-id", "r"] + [
        "--bootstrap",
        "10",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [({"STAGE": None}, "STAGE is not set"), ({"CHEXBENCH_SUBCMD": "frobnicate"}, "must be run, merge or bench")],
)
def test_the_template_refuses_a_missing_stage_or_subcommand(tmp_path, fake_venv, env, message):
    result, calls = run_job(tmp_path, fake_venv, "embed", **env)
    assert result.returncode != 0 and message in result.stderr
    assert calls == []


def test_one_template_declares_the_slurm_conventions():
    assert sorted(p.name for p in HPC.glob("*.sbatch")) == ["stage.sbatch"]
    text = (ROOT / TEMPLATE).read_text()
    directives = dict((m.group(1), m.group(2)) for m in re.finditer(r"^#SBATCH --([\w-]+)(?:=(\S+))?", text, re.M))
    assert directives["output"] == "%x-%j.out"  # submit.sh sets %x-%A_%a.out for arrays
    assert directives["open-mode"] == "append" and directives["kill-on-invalid-dep"] == "yes"
    assert "requeue" in directives
    # resources come from stage.yml through submit.sh, never from the template
    assert not {"gres", "mem", "time", "cpus-per-task"} & set(directives)
    subprocess.run(["bash", "-n", str(ROOT / TEMPLATE)], check=True)


# --- STAGES=all: the whole benchmark, one job per step of make bench (compose/hpc/bench.tsv) -------------------------


def bench_table(name: str = "bench") -> list[dict[str, str]]:
    """compose/hpc/<name>.tsv: bench (STAGES=all) or validate (STAGES=validate)."""
    lines = [ln for ln in (HPC / f"{name}.tsv").read_text().splitlines() if not ln.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"), strict=True)) for ln in lines[1:]]


@pytest.fixture
def whole_venv(tmp_path):
    """Stand-ins for every stage's console script and chexbench-bench (make bench's own steps call it)."""
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    for name in [*stage_table(), "bench", "llava-convert", "validate"]:
        script = bindir / f"chexbench-{name}"
        script.write_text(FAKE_SCRIPT)
        script.chmod(0o755)
    return tmp_path / "venv"


def whole(tmp_path: Path, venv: Path, **env: str) -> list[dict]:
    result = submit(tmp_path, venv, **({"STAGES": "all", "NUM_SHARDS": "2", "MODEL": "demo"} | env))
    ids = dict(line.split() for line in result.stdout.splitlines())
    calls = sbatch_calls(result)
    for call in calls:
        call["id"] = ids[call["name"]]
        dependency = call["opts"].get("--dependency", "afterok:")
        call["after"] = set(dependency.removeprefix("afterok:").split(":")) - {""}
    return calls


def make_after(tmp_path: Path, table: str = "bench", *variables: str) -> dict[str, set[str]]:
    """Each step's waits as the Makefile has them: its target's prerequisites (make's database), as steps."""
    database = subprocess.run(
        ["make", "-pnq", "-o", "setup", "MODEL=demo", "RESULTS=" + str(tmp_path), *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    step_of = {r["target"]: r["step"] for r in bench_table(table)}
    after = {}
    for row in bench_table(table):
        match = re.search(rf"^{row['target']}:(.*)$", database, re.M)
        assert match, row["target"]
        prerequisites = set(match.group(1).split()) - {"setup"}
        assert prerequisites <= set(step_of), (row["target"], prerequisites - set(step_of))
        after[row["step"]] = {step_of[t] for t in prerequisites}
    return after


def test_whole_benchmark_jobs_resources_and_order(tmp_path, whole_venv):
    calls = whole(tmp_path, whole_venv, CLASSIFY_SBATCH="--ntasks-per-node=4 --gres=gpu:4")
    rows, table, after = bench_table(), stage_table(), make_after(tmp_path)
    expected = {
        n for r in rows for n in [f"chexbench-{r['step']}"] + [f"chexbench-{r['step']}-merge"] * (r["kind"] == "array")
    }
    assert len(calls) == len(expected) and {c["name"] for c in calls} == expected
    by_name = {c["name"]: c for c in calls}
    position = {c["name"]: i for i, c in enumerate(calls)}
    last_job = {r["step"]: f"chexbench-{r['step']}" + ("-merge" if r["kind"] == "array" else "") for r in rows}
    for row in rows:
        call = by_name[f"chexbench-{row['step']}"]
        # afterok on exactly the steps its make target needs (an array's merge stands for the array), submitted first
        assert call["after"] == {by_name[last_job[s]]["id"] for s in after[row["step"]]}, row["step"]
        assert all(position[last_job[s]] < position[call["name"]] for s in after[row["step"]]), row["step"]
        assert call["opts"]["--export"] == (
            f"ALL,STAGE={row['step']},CHEXBENCH_SUBCMD=bench,BENCH_TARGET={row['target']},"
            "BENCH_TABLE=compose/hpc/bench.tsv"
        )
        assert call["opts"].get("--array") == ("0-1" if row["kind"] == "array" else None)
        if row["stage"] == "-":
            assert (call["opts"]["--cpus-per-task"], call["opts"]["--mem"]) == ("2", "8G")
            continue
        stage = table[row["stage"]]
        for key, option in (("cpus", "--cpus-per-task"), ("mem", "--mem"), ("time", "--time")):
            assert call["opts"][option] == stage[key], (row["step"], option)
        gres = None if "none" in (stage["gpu"], row["gpu"]) else "gpu:1"
        assert call["opts"].get("--gres") == ("gpu:4" if row["step"] == "classify" else gres), row["step"]
        if row["kind"] == "array":
            merge = by_name[f"chexbench-{row['step']}-merge"]
            assert merge["after"] == {call["id"]} and "--gres" not in merge["opts"]
            run = "r" + ("" if row["run"] == "-" else row["run"])
            assert merge["opts"]["--export"] == f"ALL,STAGE={row['stage']},CHEXBENCH_SUBCMD=merge,RUN_ID={run}"
    assert by_name["chexbench-classify"]["opts"]["--ntasks-per-node"] == "4"
    # sampling and the conversion are CPU work: no GPU even though their stage may use one
    assert "--gres" not in by_name["chexbench-privacy-sample"]["opts"]
    assert "--gres" not in by_name["chexbench-llava-convert"]["opts"]
    assert calls[-1]["name"] == "chexbench-report"


def test_whole_benchmark_covers_make_bench(tmp_path):
    """Every step's prerequisites are steps (make_after checks it), make bench ends with the last step's target, and
    the steps cover every stage of make bench."""
    after = make_after(tmp_path)
    assert after["inputs"] == set() and bench_table()[-1]["target"] == "bench-report"
    waited = set().union(*after.values())
    assert waited | {"report"} == set(after)  # every step is needed by the report, directly or not
    assert {r["stage"] for r in bench_table()} - {"-"} == set(stage_table())


def done(tmp_path: Path, *folders: str) -> None:
    for folder in folders:
        (tmp_path / "Results" / "demo" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "Results" / "demo" / folder / "_SUCCESS").write_text("")


ALL_DONE = [
    "r/generate",
    "r/embed",
    "r/fidelity",
    "r/align",
    "r/privacy-sample",
    "r.privacy/generate",
    "r.privacy/embed",
    "r.privacy-control/embed",
    "r/privacy",
    "r.classify/generate",
    "r/classify",
    "r/llava-report",
    "r/report",
]


def test_whole_benchmark_resubmits_only_what_is_missing(tmp_path, whole_venv):
    done(tmp_path, *ALL_DONE)
    result = submit(tmp_path, whole_venv, STAGES="all", MODEL="demo")
    assert sbatch_calls(result) == [] and "nothing to submit" in result.stderr

    # the control ladder's embeddings lost: they, the audit and the report; nothing waits for a skipped step
    (tmp_path / "Results/demo/r.privacy-control/embed/_SUCCESS").unlink()
    calls = whole(tmp_path, whole_venv)
    assert [c["name"] for c in calls] == ["chexbench-privacy-control", "chexbench-privacy", "chexbench-report"]
    assert [c["after"] for c in calls] == [set(), {calls[0]["id"]}, {calls[1]["id"]}]

    # llava-report lost: its preparation steps (the conversion, the inputs) run again before it
    (tmp_path / "Results/demo/r.privacy-control/embed/_SUCCESS").write_text("")
    (tmp_path / "Results/demo/r/llava-report/_SUCCESS").unlink()
    calls = whole(tmp_path, whole_venv)
    assert [c["name"] for c in calls] == [
        "chexbench-inputs",
        "chexbench-llava-convert",
        "chexbench-llava-report",
        "chexbench-report",
    ]
    # a skipped step's place is taken by the submitted steps it waits for: here the inputs
    first, convert, llava = (c["id"] for c in calls[:3])
    assert [c["after"] for c in calls] == [set(), {first}, {first, convert}, {first, llava}]


def test_whole_benchmark_with_one_shard_has_no_arrays(tmp_path, whole_venv):
    calls = whole(tmp_path, whole_venv, NUM_SHARDS="1")
    assert sorted(c["name"] for c in calls) == sorted(f"chexbench-{r['step']}" for r in bench_table())
    assert not any("--array" in c["opts"] for c in calls)


def test_whole_benchmark_preflight_needs_chexbench_bench(tmp_path, whole_venv):
    (whole_venv / "bin" / "chexbench-bench").unlink()
    result = submit(tmp_path, whole_venv, check=False, STAGES="all", MODEL="demo")
    assert result.returncode != 0 and "chexbench-bench is missing: run 'make setup'" in result.stderr
    assert sbatch_calls(result) == []


def test_a_bench_step_runs_its_target_alone(tmp_path, whole_venv):
    """An array task of the embed step: make bench-embed's one command with --shard auto, no earlier step's."""
    bench = {"CHEXBENCH_SUBCMD": "bench", "BENCH_TARGET": "bench-embed", "MODEL": "demo"}
    result, calls = run_job(tmp_path, whole_venv, "embed", SLURM_ARRAY_JOB_ID="40", SLURM_ARRAY_TASK_ID="1", **bench)
    assert result.returncode == 0, result.stderr
    assert [Path(c["argv"][0]).name for c in calls] == ["chexbench-embed"]
    argv = calls[0]["argv"]
    assert argv[1] == "run" and argv[argv.index("--run-id") + 1] == "r" and argv[-2:] == ["--shard", "auto"]
    row = (tmp_path / "Results/demo/r/slurm-logs/jobs.tsv").read_text().splitlines()[1].split("\t")
    assert row[5:7] == ["embed bench-embed", "0"]

    # a single job: no shard; the report step alone (none of the stages it waits for), its exit code recorded
    (tmp_path / "calls.jsonl").unlink()
    bench["BENCH_TARGET"] = "bench-report"
    result, calls = run_job(tmp_path, whole_venv, "report", FAKE_EXIT="4", **bench)
    assert result.returncode == 4
    assert [Path(c["argv"][0]).name for c in calls] == ["chexbench-report"] and "--shard" not in calls[0]["argv"]


# --- STAGES=validate: make validate as its own chain (compose/hpc/validate.tsv) ---------------------------------------

VALIDATE_STEPS = [
    "validate-pool",
    "validate-split",
    "validate-models",
    "validate-fidelity",
    "validate-reports",
    "validate-privacy",
    "validate-utility",
    "validate-alignment",
    "validate-judge",
]


def test_validate_chain_jobs_resources_and_order(tmp_path, whole_venv):
    """Every axis after the split (privacy and alignment after the models too), the judge after every axis, each job
    with its stage's resources, under the fixed run id whatever RUN_ID says."""
    calls = whole(tmp_path, whole_venv, STAGES="validate", RUN_ID="r", VALIDATE_REPORTS_SBATCH="--gres=gpu:a100:1")
    rows, table = bench_table("validate"), stage_table()
    after = make_after(tmp_path, "validate")
    assert [c["name"] for c in calls] == [f"chexbench-{step}" for step in VALIDATE_STEPS]
    assert after["validate-judge"] == {
        f"validate-{axis}" for axis in ("fidelity", "reports", "privacy", "utility", "alignment")
    }
    assert after["validate-privacy"] == after["validate-alignment"] == {"validate-split", "validate-models"}
    by_step = {c["name"].removeprefix("chexbench-"): c for c in calls}
    logs = tmp_path / "Results" / "demo" / "validate" / "slurm-logs"
    for row in rows:
        call = by_step[row["step"]]
        assert call["after"] == {by_step[s]["id"] for s in after[row["step"]]}, row["step"]
        assert call["opts"]["--output"] == str(logs / "%x-%j.out") and "--array" not in call["opts"]
        assert call["opts"]["--export"] == (
            f"ALL,STAGE={row['step']},CHEXBENCH_SUBCMD=bench,BENCH_TARGET={row['target']},"
            "BENCH_TABLE=compose/hpc/validate.tsv"
        )
        if row["stage"] == "-":
            assert (call["opts"]["--cpus-per-task"], call["opts"]["--mem"]) == ("2", "8G") and "--gres" not in call[
                "opts"
            ]
            continue
        stage = table[row["stage"]]
        for key, option in (("cpus", "--cpus-per-task"), ("mem", "--mem"), ("time", "--time")):
            assert call["opts"][option] == stage[key], (row["step"], option)
        gres = None if "none" in (stage["gpu"], row["gpu"]) else "gpu:1"
        assert call["opts"].get("--gres") == ("gpu:a100:1" if row["step"] == "validate-reports" else gres), row["step"]
    # the axes take their heavy stage's resources and a GPU; the judge the report's, none
    assert {r["step"]: r["stage"] for r in rows if r["stage"] != "-"} == {
        "validate-fidelity": "embed",
        "validate-reports": "llava-report",
        "validate-privacy": "privacy",
        "validate-utility": "classify",
        "validate-alignment": "align",
        "validate-judge": "report",
    }
    assert (
        by_step["validate-utility"]["opts"]["--gres"] == "gpu:1" and "--gres" not in by_step["validate-judge"]["opts"]
    )
    assert rows[-1]["target"] == "validate-run" and rows[-1]["folder"] == "validate"


@pytest.mark.parametrize("where", ["MAKE_VARS", "environment"])
def test_validate_axes_select_the_axis_steps(tmp_path, whole_venv, where):
    """VALIDATE_AXES decides the judge's prerequisites: only those axes (and their preparation) are submitted."""
    env = {"STAGES": "validate", "MODEL": "demo"}
    if where == "MAKE_VARS":
        env["MAKE_VARS"] = f"VENV={whole_venv} VALIDATE_AXES=reports"
    else:
        env["VALIDATE_AXES"] = "alignment reports"
    calls = sbatch_calls(submit(tmp_path, whole_venv, **env))
    names = [c["name"].removeprefix("chexbench-") for c in calls]
    if where == "MAKE_VARS":
        assert names == ["validate-pool", "validate-split", "validate-reports", "validate-judge"]
    else:  # alignment needs the models step, reports does not
        assert names == [
            "validate-pool",
            "validate-split",
            "validate-models",
            "validate-reports",
            "validate-alignment",
            "validate-judge",
        ]
    axes = [n for n in names if n not in ("validate-pool", "validate-split", "validate-models", "validate-judge")]
    judge = calls[-1]["opts"]["--dependency"].removeprefix("afterok:").split(":")
    assert sorted(judge) == sorted(str(1001 + names.index(axis)) for axis in axes)


def test_validate_chain_is_skipped_once_judged(tmp_path, whole_venv):
    judged = tmp_path / "Results" / "demo" / "validate" / "validate"
    judged.mkdir(parents=True)
    (judged / "_SUCCESS").write_text("")
    result = submit(tmp_path, whole_venv, STAGES="validate", MODEL="demo")
    assert sbatch_calls(result) == [] and "nothing to submit" in result.stderr
    # a judgement of another run id does not count
    (judged / "_SUCCESS").unlink()
    other = tmp_path / "Results" / "demo" / "r" / "validate"
    other.mkdir(parents=True)
    (other / "_SUCCESS").write_text("")
    assert len(sbatch_calls(submit(tmp_path, whole_venv, STAGES="validate", MODEL="demo"))) == len(VALIDATE_STEPS)


def test_validate_chain_preflight(tmp_path, whole_venv):
    """chexbench-validate runs from the .venv under every runner; under apptainer every image an axis uses must exist
    (the fidelity axis also runs generate's and fidelity's, not only its embed resources' image)."""
    (whole_venv / "bin" / "chexbench-validate").unlink()
    result = submit(tmp_path, whole_venv, check=False, STAGES="validate", MODEL="demo")
    assert result.returncode != 0 and "chexbench-validate is missing: run 'make setup'" in result.stderr
    assert sbatch_calls(result) == []

    (whole_venv / "bin" / "chexbench-validate").write_text(FAKE_SCRIPT)
    (whole_venv / "bin" / "chexbench-validate").chmod(0o755)
    sif_dir = tmp_path / "sif"
    sif_dir.mkdir()
    for image in ("embed", "llava-report", "privacy", "classify", "align", "report"):
        (sif_dir / f"chexbench-{image}_7.7.7.sif").write_text("")
    env = {"STAGES": "validate", "MODEL": "demo", "RUNNER": "apptainer"}
    env["MAKE_VARS"] = f"VENV={whole_venv} SIF_DIR={sif_dir} IMAGE_TAG=7.7.7"
    result = submit(tmp_path, whole_venv, check=False, **env)
    assert result.returncode != 0 and sbatch_calls(result) == []
    assert f"{sif_dir}/chexbench-fidelity_7.7.7.sif is missing" in result.stderr or (
        f"{sif_dir}/chexbench-generate_7.7.7.sif is missing" in result.stderr
    )
    # the axes left out need no image (the report scorers import no images: no generate image)
    calls = sbatch_calls(submit(tmp_path, whole_venv, VALIDATE_AXES="reports", **env))
    assert [c["name"] for c in calls][-2:] == ["chexbench-validate-reports", "chexbench-validate-judge"]
    for image in ("generate", "fidelity"):
        (sif_dir / f"chexbench-{image}_7.7.7.sif").write_text("")
    assert len(sbatch_calls(submit(tmp_path, whole_venv, **env))) == len(VALIDATE_STEPS)


def test_the_validate_judge_step_runs_the_judge_alone(tmp_path, whole_venv):
    """The judge job: make validate-run with every axis held back runs the judgement, the report page and the gate,
    no axis's commands and no setup (the sub-make that runs the judge gets -o setup too)."""
    job = {"CHEXBENCH_SUBCMD": "bench", "BENCH_TARGET": "validate-run", "BENCH_TABLE": "compose/hpc/validate.tsv"}
    job |= {"MODEL": "demo", "RUN_ID": "validate", "VALIDATE_AXES": "reports utility"}
    result, calls = run_job(tmp_path, whole_venv, "validate-judge", **job)
    assert result.returncode == 0, result.stderr
    commands = [(Path(c["argv"][0]).name, c["argv"][1]) for c in calls]
    assert commands == [("chexbench-validate", "judge"), ("chexbench-report", "run"), ("chexbench-validate", "judge")]
    assert "--strict" in calls[2]["argv"] and "--strict" not in calls[0]["argv"]
    assert not (whole_venv / "bin" / "python").exists()  # setup never ran
    row = (tmp_path / "Results/demo/validate/slurm-logs/jobs.tsv").read_text().splitlines()[1].split("\t")
    assert row[5:7] == ["validate-judge validate-run", "0"]

    # the judge's own exit code (8: a relation failed) is the job's, not the sub-make's 2
    (tmp_path / "calls.jsonl").unlink()
    result, calls = run_job(tmp_path, whole_venv, "validate-judge", FAKE_EXIT="8", **job)
    assert result.returncode == 8 and len(calls) == 1
    row = (tmp_path / "Results/demo/validate/slurm-logs/jobs.tsv").read_text().splitlines()[2].split("\t")
    assert row[5:7] == ["validate-judge validate-run", "8"]


def test_a_validate_axis_step_runs_its_axis_alone(tmp_path, whole_venv):
    """An axis job: its own commands only, the pool and the split (jobs before it) held back."""
    job = {"CHEXBENCH_SUBCMD": "bench", "BENCH_TARGET": "validate-reports", "BENCH_TABLE": "compose/hpc/validate.tsv"}
    result, calls = run_job(tmp_path, whole_venv, "validate-reports", MODEL="demo", RUN_ID="validate", **job)
    assert result.returncode == 0, result.stderr
    commands = [(Path(c["argv"][0]).name, c["argv"][1]) for c in calls]
    assert commands[0] == ("chexbench-validate", "build") and calls[0]["argv"][2] == "reports"
    assert ("chexbench-llava-report", "score") in commands
    assert ("chexbench-bench", "validation-pool") not in commands and ("chexbench-validate", "split") not in commands
