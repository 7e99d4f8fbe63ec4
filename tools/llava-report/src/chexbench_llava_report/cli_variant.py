"""Image variants of the stage: a separately installed package declares, under the `chexbench_llava_report.variants`
entry points, the commands that replace the native `finetune` and `generate` when CHEXBENCH_VARIANT names it (legacy:
LLaVA-Rad's own code, chexbench-llava-legacy in tools/llava-report/legacy). The stage never imports a variant."""

from __future__ import annotations

from importlib.metadata import entry_points

import click
from chexbench_common.errors import MissingResourceError

GROUP = "chexbench_llava_report.variants"


def variant_commands(name: str) -> list[click.Command]:
    """The variant's commands; when no installed package provides it, `finetune` and `generate` that say so."""
    found = entry_points(group=GROUP, name=name)
    if found:
        return list(next(iter(found)).load())
    return [_unavailable(name, command) for command in ("finetune", "generate")]


def _unavailable(variant: str, name: str) -> click.Command:
    @click.command(
        name,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"Unavailable: no installed package provides the {variant} variant.",
    )
    def refuse() -> None:
        raise MissingResourceError(
            f"CHEXBENCH_VARIANT={variant}: no installed package provides this variant's `{name}` (legacy: install "
            "tools/llava-report/legacy, as the llava-report-legacy image does); unset it for the native commands"
        )

    return refuse
