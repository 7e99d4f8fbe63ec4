"""The libraries' own progress bars follow CHEXBENCH_PROGRESS: off in log and none mode, back in bar mode."""

import json
import os
import subprocess
import sys

from chexbench_common import progress


def _bars(mode: str, import_first: bool) -> dict:
    """Whether each library would show its bars after library_progress(mode), in a fresh process (the libraries
    read their switch at import): with the libraries imported before the call, or after it as in a command."""
    libraries = "import huggingface_hub.utils as hub, transformers.utils.logging as tl, diffusers.utils.logging as dl"
    code = "\n".join(
        [
            libraries if import_first else "",
            "from chexbench_common.progress import library_progress",
            f"library_progress({mode!r})",
            libraries,
            "print(json.dumps({'hub': not hub.are_progress_bars_disabled(),"
            " 'transformers': tl.is_progress_bar_enabled(), 'diffusers': dl.is_progress_bar_enabled()}))",
        ]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "CHEXBENCH_PROGRESS")}
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_log_mode_turns_the_library_bars_off():  # as does none: every mode but bar
    assert _bars("log", import_first=True) == {"hub": False, "transformers": False, "diffusers": False}
    after = _bars("log", import_first=False)  # diffusers reads no switch at import: a stage turns its bars off itself
    assert after["hub"] is False and after["transformers"] is False


def test_bar_mode_leaves_them_on():
    assert _bars("bar", import_first=False) == {"hub": True, "transformers": True, "diffusers": True}


def test_a_users_own_switch_is_left_alone_in_bar_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(progress, "_switched_here", False)
    progress.library_progress("log")
    progress.library_progress("bar")
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_a_batch_log_has_our_info_lines_and_only_the_libraries_warnings(capsys):
    import logging

    from chexbench_common.cli import configure_logging

    try:
        configure_logging(0)
        logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
        logging.getLogger("chexbench_fidelity.run").info("fidelity: 3 sets")
        logging.getLogger("some_library.module").warning("sequence longer than the model")
        err = capsys.readouterr().err
        assert "AVX512" not in err and "fidelity: 3 sets" in err and "sequence longer" in err
        configure_logging(2)  # -vv: everything
        logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
        assert "AVX512" in capsys.readouterr().err
    finally:
        configure_logging(0)
