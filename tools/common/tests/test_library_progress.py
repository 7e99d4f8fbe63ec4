"""The libraries' own progress bars follow CHEXBENCH_PROGRESS: off in log and none mode, back in bar mode."""

import pytest
from chexbench_common import progress


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setattr(progress, "_switched_here", False)
    yield
    progress.library_progress("bar")


@pytest.mark.parametrize("mode", ["log", "none"])
def test_log_and_none_turn_the_library_bars_off_and_bar_turns_them_back_on(clean, mode):
    import huggingface_hub.utils as hub
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    progress.library_progress(mode)
    assert hub.are_progress_bars_disabled()
    assert not transformers_logging.is_progress_bar_enabled() and not diffusers_logging.is_progress_bar_enabled()
    progress.library_progress("bar")
    assert not hub.are_progress_bars_disabled()
    assert transformers_logging.is_progress_bar_enabled() and diffusers_logging.is_progress_bar_enabled()


def test_a_users_own_switch_is_left_alone_in_bar_mode(clean, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    progress.library_progress("log")
    progress.library_progress("bar")
    assert progress.os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


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
