"""chexbench-classify: thin Click layer over run.py."""

from __future__ import annotations

import click
from chexbench_common.cli import stage_group
from chexbench_common.device import parse_device
from chexbench_common.env import configure_caches
from chexbench_common.options import DIR, FILE, builds_request, echo_outputs, group, stage_run_options
from chexbench_common.progress import resolve_mode

from . import __version__
from .choices import BACKBONE_NAMES, SETTINGS, SYNTHETIC_SELECTIONS
from .labels import POLICIES

LIGHTNING_ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}  # our device kinds as Lightning's


def lightning_accelerator(device: str) -> str:
    """Our --device (auto, cpu, cuda, cuda:N) as Lightning's accelerator."""
    return LIGHTNING_ACCELERATORS[parse_device(device).kind]


def lightning_devices(device: str, devices: str) -> str | list[int]:
    """Lightning's devices: cuda:N is that GPU; one process on the CPU unless --devices says otherwise."""
    parsed = parse_device(device)
    if parsed.index is not None:
        return [parsed.index]
    return devices if parsed.kind != "cpu" or devices != "auto" else 1


main = stage_group("classify", __version__, "Train on synthetic, test on real: 14-label chest X-ray classification.")


@main.command()
@stage_run_options(device=True)
@click.option("--train-prompts", type=FILE, required=True, help="TRAIN prompts table (real images + labels).")
@click.option("--test-prompts", type=FILE, required=True, help="TEST prompts table (real, patient-disjoint).")
@click.option("--real-root", type=DIR, required=True, help="Folder the prompts tables' image_path are relative to.")
@click.option("--images", type=FILE, help="images table of the TRAIN prompts' generations [<run>/generate].")
@click.option("--images-root", type=DIR, help="Folder of the images table's paths [default: its metadata].")
@click.option("--setting", "settings", type=click.Choice(SETTINGS), multiple=True, help="Repeat; default: all six.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Training seeds 0..N-1.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True, help="Early stopping (epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=4, show_default=True, help="DataLoader workers.")
@click.option("--size", type=click.IntRange(min=32), default=224, show_default=True, help="Training resolution.")
@click.option("--backbone", type=click.Choice(BACKBONE_NAMES), default="resnet50", show_default=True)
@click.option(
    "--backbone-weights",
    type=FILE,
    help="Trunk weights (local .pth state_dict): torchvision ImageNet, or torchxrayvision's for xrv-densenet121.",
)
@click.option("--width", type=click.IntRange(min=1), default=64, hidden=True, help="ResNet base width (tests).")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option(
    "--uncertain",
    type=click.Choice(sorted(POLICIES)),
    default="zeros",
    show_default=True,
    help="Uncertain (-1) labels: zeros, ones or ignore (masked).",
)
@click.option("--hflip/--no-hflip", default=False, show_default=True, help="Random horizontal flips (swap the heart).")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.5), default=0.05, show_default=True)
@click.option(
    "--synthetic-selection",
    type=click.Choice(SYNTHETIC_SELECTIONS),
    default="held-out-synthetic",
    show_default=True,
    help="Checkpoint of a synthetic-only phase: best on the validation prompts' synthetic twins, or the last epoch.",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True, help="Patient resamples for CIs."
)
@click.option("--ci-level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--devices", default="auto", show_default=True, help="GPUs to train on with --device cuda (e.g. 4).")
@click.option("--strategy", default="auto", show_default=True, help="Lightning strategy (e.g. ddp).")
@click.option("--precision", help="Lightning precision [default: 16-mixed on GPU, 32-true on CPU].")
@click.option("--cache-dir", type=DIR, help="Decoded-image cache [default: $CHEXBENCH_CACHE_DIR/classify].")
@builds_request(
    ".run:Request",
    settings=lambda settings: tuple(settings) or SETTINGS,
    seeds=lambda seeds: tuple(range(seeds)),
    options=group(
        policy=lambda uncertain: uncertain,
        accelerator=lightning_accelerator,
        devices=lightning_devices,
        progress=lambda: resolve_mode() == "bar",
    ),
    cache_dir=lambda cache_dir: cache_dir or configure_caches() / "classify",
)
def run(request):
    """Train every setting and seed, test on real images, write metrics with CIs."""
    from .run import follow
    from .run import run as run_stage
    from .train import is_follower

    if is_follower():  # a DDP rank other than 0
        follow(request)
        return
    echo_outputs(*run_stage(request))
