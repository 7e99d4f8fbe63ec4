"""One (setting, seed): train each phase with Lightning (checkpoint and early stopping on validation macro-AUROC,
resume from the last checkpoint after a kill), then predict the validation and test sets with the best weights."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from chexbench_common.faults import fault_point
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from .backbones import BACKBONES
from .data import ImageCache, LabelledImages
from .labels import targets
from .model import MONITOR, Classifier, load_pretrained

log = logging.getLogger(__name__)
# Lightning's start-up chatter (cloud-logger tips, the srun hint outside Slurm jobs) is not progress: keep it out
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*srun.*command is available.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@dataclass
class Options:
    epochs: int = 20
    patience: int = 5
    batch_size: int = 64
    workers: int = 4
    size: int = 224
    backbone: str = "resnet50"  # or densenet121, xrv-densenet121
    width: int = 64  # base width: 64 is the real network, smaller builds test-size networks
    lr: float = 1e-4
    policy: str = "zeros"
    hflip: bool = False
    backbone_weights: Path | None = None
    accelerator: str = "auto"
    devices: str | list[int] = "auto"
    strategy: str = "auto"
    precision: str | None = None  # None: 16-mixed on GPU, 32 on CPU
    progress: bool = True


class _EpochFault(Callback):
    """The kill-and-resume tests' fault point `classify:epoch`: at the start of every epoch after the first, when the
    previous epoch's checkpoint is on disk."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch > 0:
            fault_point("classify:epoch")


class _EpochLog(Callback):
    """Without a progress bar (batch jobs, CHEXBENCH_PROGRESS=log): one log line per epoch."""

    def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation, so its metrics are current
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("train_loss", "val_loss", MONITOR)}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        log.info("%s: epoch %d/%d, %s", trainer.default_root_dir, trainer.current_epoch + 1, trainer.max_epochs, shown)


def _loader(frame: pd.DataFrame, options: Options, cache: ImageCache, shuffle: bool, augment: bool):
    y, mask = targets(frame, options.policy)
    normalise = BACKBONES[options.backbone].normalise
    dataset = LabelledImages(frame, y, mask, cache, hflip=augment and options.hflip, normalise=normalise)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=shuffle,
        num_workers=options.workers,
        persistent_workers=options.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def is_follower() -> bool:
    """A DDP rank other than 0 (Lightning's launcher sets LOCAL_RANK in the processes it starts; srun sets
    SLURM_PROCID): it trains alongside rank 0 and writes nothing."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("SLURM_PROCID", "0") != "0"


def _trainer(
    options: Options, folder: Path, max_epochs: int, single: bool = False
) -> tuple[L.Trainer, ModelCheckpoint]:
    checkpoint = ModelCheckpoint(dirpath=folder, filename="best", monitor=MONITOR, mode="max", save_last=True)
    precision = options.precision or ("16-mixed" if torch.cuda.is_available() else "32-true")
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=options.accelerator,
        devices=1 if single else options.devices,
        strategy="auto" if single else options.strategy,
        precision=precision,
        callbacks=[
            checkpoint,
            EarlyStopping(MONITOR, mode="max", patience=options.patience),
            _EpochFault(),
            *([] if options.progress else [_EpochLog()]),
        ],
        logger=False,
        enable_progress_bar=options.progress,
        enable_model_summary=False,
        deterministic=False,
        default_root_dir=folder,
        num_sanity_val_steps=0,
    )
    return trainer, checkpoint


def train_and_predict(
    phases: list[pd.DataFrame],
    val: pd.DataFrame,
    test: pd.DataFrame,
    seed: int,
    options: Options,
    folder: Path,
    cache: ImageCache,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Probabilities {'val': (n_val, 14), 'test': (n_test, 14)} of the best checkpoint of the last phase, and the
    phases resumed from a checkpoint."""
    L.seed_everything(seed, workers=True, verbose=False)
    model = Classifier(width=options.width, lr=options.lr, backbone=options.backbone)
    if options.backbone_weights is not None:
        load_pretrained(model.net, options.backbone_weights, options.backbone)
    val_loader = _loader(val, options, cache, shuffle=False, augment=False)
    best, resumed = None, []
    for number, frame in enumerate(phases):
        phase_dir = folder / f"phase{number}"
        trainer, checkpoint = _trainer(options, phase_dir, options.epochs)
        last = phase_dir / "last.ckpt"
        if best is not None:  # the next phase starts from the previous phase's best weights
            model = Classifier.load_from_checkpoint(best, weights_only=True)
        resume = str(last) if last.is_file() else None
        if resume:
            log.info("resuming %s from %s", phase_dir, last)
            resumed.append(str(phase_dir))
        trainer.fit(model, _loader(frame, options, cache, shuffle=True, augment=True), val_loader, ckpt_path=resume)
        best = checkpoint.best_model_path or str(last)
    if is_follower():
        return {}, resumed
    # rank 0 predicts on one device: a distributed sampler would give it only its share of the images
    model = Classifier.load_from_checkpoint(best, weights_only=True)
    trainer, _ = _trainer(options, folder / "predict", 1, single=True)
    out = {}
    for name, frame in (("val", val), ("test", test)):
        batches = trainer.predict(model, _loader(frame, options, cache, shuffle=False, augment=False))
        out[name] = torch.cat(batches).float().numpy()
    return out, resumed
