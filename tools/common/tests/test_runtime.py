import io
import os

import click
import pytest
from chexbench_common.cli import stage_group
from chexbench_common.env import configure_caches
from chexbench_common.errors import MissingResourceError, PathEscapeError, SchemaError
from chexbench_common.paths import resolve_under
from chexbench_common.progress import Progress, track
from click.testing import CliRunner


def test_resolve_under_accepts_inside_and_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert resolve_under(root, "a/b.png") == (root / "a" / "b.png").resolve()
    for bad in ("../x.png", "a/../../x.png", "/etc/passwd"):
        with pytest.raises(PathEscapeError):
            resolve_under(root, bad, where="images.csv row 3")
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathEscapeError, match="images.csv row 4: path 'link/secret' resolves outside"):
        resolve_under(root, "link/secret", where="images.csv row 4")


def test_progress_log_mode_prints_periodic_lines():
    out = io.StringIO()
    assert list(track(range(10), desc="embed", unit="img", mode="log", every_n=5, stream=out)) == list(range(10))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "embed: 5/10 img" in lines[0] and "embed: 10/10 img" in lines[1] and "ETA" in lines[0]


def test_progress_auto_is_log_off_a_terminal_and_none_is_silent():
    out = io.StringIO()
    progress = Progress(3, "x", mode="auto", stream=out)
    assert progress.mode == "log"
    silent = io.StringIO()
    with Progress(3, "x", mode="none", stream=silent) as p:
        p.update(3)
    assert silent.getvalue() == ""


def test_progress_log_mode_reports_by_time(monkeypatch):
    out = io.StringIO()
    clock = iter([0.0, 1.0, 61.0, 62.0, 63.0])  # start, three updates, close
    monkeypatch.setattr("chexbench_common.progress.time.monotonic", lambda: next(clock))
    with Progress(None, "gen", mode="log", every_s=60, stream=out) as p:
        p.update()
        p.update()
        p.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one once 60 s have passed, one at close
    assert "gen: 2 it" in lines[0] and "gen: 3 it" in lines[1]


def test_configure_caches_sets_unset_variables_only(tmp_path, monkeypatch):
    for var in ("HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", "/already/set")
    root = configure_caches(tmp_path / "cache")
    assert os.environ["HF_HOME"] == str(root / "huggingface")
    assert os.environ["TORCH_HOME"] == "/already/set"
    assert os.environ["XDG_CACHE_HOME"].startswith(str(tmp_path))


def _cli_raising(error):
    group = stage_group("demo", "9.9", "Demo tool.")

    @group.command()
    def run():
        raise error

    return group


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (MissingResourceError("weights not found at /x/model.safetensors"), 5, "weights not found"),
        (PathEscapeError("row 2: path '../x' escapes its root"), 3, "escapes its root"),
        (SchemaError("p.csv", ["row 1, column 'a': bad", "row 2, column 'b': bad"]), 4, "p.csv: row 2"),
    ],
)
def test_cli_turns_errors_into_short_messages_and_exit_codes(error, code, text):
    result = CliRunner().invoke(_cli_raising(error), ["run"])
    assert result.exit_code == code
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert all(line.startswith("chexbench-demo: error: ") for line in result.stderr.splitlines())


def test_the_contracts_own_errors_leave_every_command_with_the_same_codes(tmp_path):
    """The contract raises its own errors (it imports nothing of the runtime); they are the runtime's family."""
    from chexbench_common import errors
    from chexbench_schema import errors as contract
    from chexbench_schema import read_table

    assert (errors.ChexbenchError, errors.BadInputError, errors.SchemaError) == (
        contract.ChexbenchError,
        contract.BadInputError,
        contract.SchemaError,
    )
    (tmp_path / "p.csv").write_text("split,prompt_id\ntest,p1\n")
    for table, code, text in [("p.csv", 4, "missing column(s)"), ("absent.csv", 3, "file not found")]:

        def read(table=table):
            read_table(tmp_path / table, "prompts")

        group = stage_group("demo", "9.9", "Demo tool.")
        group.command("run")(read)
        result = CliRunner().invoke(group, ["run"])
        assert (result.exit_code, "Traceback" in result.stderr) == (code, False), result.stderr
        assert text in result.stderr and result.stderr.startswith(f"chexbench-demo: error: {tmp_path / table}: ")


def test_cli_version_and_help():
    group = stage_group("demo", "9.9", "Demo tool.")
    group.add_command(click.Command("run", help="Run it."))
    assert "9.9" in CliRunner().invoke(group, ["--version"]).output
    assert "run" in CliRunner().invoke(group, ["--help"]).output


def test_select_device_refuses_cuda_without_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    from chexbench_common.device import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == "cpu"
    for requested in ("cuda", "cuda:1"):
        with pytest.raises(MissingResourceError, match=f"--device {requested} was asked for but no CUDA GPU"):
            select_device(requested)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda"
    assert select_device("cuda:1") == torch.device("cuda", 1)


def test_a_finished_run_of_another_tool_version_is_not_complete(tmp_path):
    from chexbench_common.rundir import StageRun

    (tmp_path / "in.txt").write_text("x")
    old = StageRun(tmp_path, "m", "r", "s", tool_version="0.1.0")
    old.start({"a": 1}, {"in": tmp_path / "in.txt"})
    old.finish({})
    assert old.is_complete({"a": 1}, {"in": tmp_path / "in.txt"})
    new = StageRun(tmp_path, "m", "r", "s", tool_version="0.2.0")
    assert not new.is_complete({"a": 1}, {"in": tmp_path / "in.txt"})
