"""chexbench-llava-report: thin Click layer; each area's commands live in its own cli_<area> module.

An image variant (CHEXBENCH_VARIANT; `LLAVA_ENV=legacy` in make) replaces `finetune` and `generate` (and drops `run`)
with the commands a separately installed package declares under the `chexbench_llava_report.variants` entry points
(legacy: LLaVA-Rad's own code, tools/llava-report/legacy); everything else is the same."""

from __future__ import annotations

import os

from chexbench_common.cli import stage_group

from . import __version__, cli_demo, cli_moved, cli_run, cli_score, cli_train, cli_variant

main = stage_group(
    "llava-report",
    __version__,
    "LLaVA-Rad report generation: fine-tune the converted LLaVA-Rad on synthetic images, generate and score findings.",
)
variant = os.environ.get("CHEXBENCH_VARIANT")
train_commands = cli_variant.variant_commands(variant) if variant else (*cli_run.COMMANDS, *cli_train.COMMANDS)
for command in (*train_commands, *cli_score.COMMANDS, *cli_demo.COMMANDS, *cli_moved.COMMANDS):
    main.add_command(command)
