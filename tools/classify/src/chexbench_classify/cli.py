"""chexbench-classify: thin Click layer over run.py."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import echo_outputs, stage_run_options

from . import __version__
from .choices import BACKBONE_NAMES, SETTINGS, SYNTHETIC_SELECTIONS
from .labels import POLICIES


def lightning_devices(device: str, devices: str) -> dict[str, str | list[int]]:
    """Our --device (auto, cpu, cuda, cuda:N) and --devices as Lightning's accelerator and devices."""
    if device.startswith("cuda:"):
        return {"accelerator": "gpu", "devices": [int(device.split(":", 1)[1])]}
    accelerator = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}.get(device)
    if accelerator is None:
        raise click.BadParameter(f"{device!r}: use auto, cpu, cuda or cuda:N", param_hint="--device")
    return {"accelerator": accelerator, "devices": devices if accelerator != "cpu" or devices != "auto" else 1}


main = stage_group("classify", __version__, "Train on synthetic, test on real: 14-label chest X-ray classification.")

_file = click.Path(path_type=Path, dir_okay=False)
_dir = click.Path(path_type=Path, file_okay=False)


@main.command()
@stage_run_options(device=True)
@click.option("--train-prompts", type=_file, required=True, help="TRAIN prompts table (real images + labels).")
@click.option("--test-prompts", type=_file, required=True, help="TEST prompts table (real, patient-disjoint).")
@click.option("--real-root", type=_dir, required=True, help="Folder the prompts tables' image_path are relative to.")
@click.option("--images", type=_file, help="images table of the TRAIN prompts' generations [<run>/generate].")
@click.option("--images-root", type=_dir, help="Folder of the images table's paths [default: its metadata].")
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
    type=_file,
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
@click.option("--cache-dir", type=_dir, help="Decoded-image cache [default: $CHEXBENCH_CACHE_DIR/classify].")
def run(
    results,
    model,
    run_id,
    force,
    device,
    train_prompts,
    test_prompts,
    real_root,
    images,
    images_root,
    settings,
    seeds,
    epochs,
    patience,
    batch_size,
    workers,
    size,
    backbone,
    backbone_weights,
    width,
    lr,
    uncertain,
    hflip,
    val_fraction,
    synthetic_selection,
    bootstrap,
    ci_level,
    devices,
    strategy,
    precision,
    cache_dir,
):
    """Train every setting and seed, test on real images, write metrics with CIs."""
    from chexbench_common.env import configure_caches
    from chexbench_common.progress import resolve_mode

    from .run import Request, follow
    from .run import run as run_stage
    from .train import Options, is_follower

    options = Options(
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        workers=workers,
        size=size,
        backbone=backbone,
        width=width,
        lr=lr,
        policy=uncertain,
        hflip=hflip,
        backbone_weights=backbone_weights,
        **lightning_devices(device, devices),
        strategy=strategy,
        precision=precision,
        progress=resolve_mode() == "bar",
    )
    request = Request(
        results=results,
        model=model,
        run_id=run_id,
        train_prompts=train_prompts,
        test_prompts=test_prompts,
        real_root=real_root,
        images=images,
        images_root=images_root,
        settings=tuple(settings) or SETTINGS,
        seeds=tuple(range(seeds)),
        val_fraction=val_fraction,
        synthetic_selection=synthetic_selection,
        bootstrap=bootstrap,
        ci_level=ci_level,
        options=options,
        cache_dir=cache_dir or configure_caches() / "classify",
        force=force,
    )
    if is_follower():  # a DDP rank other than 0
        follow(request)
        return
    echo_outputs(*run_stage(request))
