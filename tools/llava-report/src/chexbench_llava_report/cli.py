"""chexbench-llava-report: thin Click layer; each area's commands live in its own cli_<area> module.

In the legacy image (CHEXBENCH_VARIANT=legacy; `LLAVA_ENV=legacy` in make) `finetune` and `generate` are LLaVA-Rad's
own code behind the same command names (cli_legacy.py); everything else is the same."""

from __future__ import annotations

import os

from chexbench_common.cli import stage_group

from . import __version__, cli_convert, cli_demo, cli_legacy, cli_run, cli_score, cli_train

main = stage_group(
    "llava-report",
    __version__,
    "LLaVA-Rad report generation: convert a checkpoint, fine-tune on synthetic images, generate and score findings.",
)
# `run` chains the native finetune and generate: in the legacy image, call its finetune and generate one by one
legacy = os.environ.get("CHEXBENCH_VARIANT") == "legacy"
train_commands = cli_legacy.COMMANDS if legacy else (*cli_run.COMMANDS, *cli_train.COMMANDS)
for command in (*cli_convert.COMMANDS, *train_commands, *cli_score.COMMANDS, *cli_demo.COMMANDS):
    main.add_command(command)
