"""One (setting, seed): train each phase with Lightning (its checkpoint selected by the phase's rule: best validation
macro-AUROC on the real or the held-out synthetic validation set with early stopping, or the last epoch; the last
epoch saved after every epoch, so a killed run resumes where it stopped), then predict the validation and test sets
with the selected weights."""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from chexbench_common.atomic import write_json_atomic
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
    options: Options, folder: Path, max_epochs: int, validate: bool = True, single: bool = False
) -> tuple[L.Trainer, ModelCheckpoint | None]:
    """A Trainer that saves `last.ckpt` after every epoch (what a killed run resumes from) and, when the phase
    selects on validation, `best.ckpt` (the best validation macro-AUROC) with early stopping on it."""
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    best = None
    callbacks = [last, _EpochFault(), *([] if options.progress else [_EpochLog()])]
    if validate:
        best = ModelCheckpoint(
            dirpath=folder, filename="best", monitor=MONITOR, mode="max", enable_version_counter=False
        )
        callbacks += [best, EarlyStopping(MONITOR, mode="max", patience=options.patience)]
    precision = options.precision or ("16-mixed" if torch.cuda.is_available() else "32-true")
    on_cpu = options.accelerator == "cpu" or not torch.cuda.is_available()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=options.accelerator,
        devices=1 if single else options.devices,
        strategy="auto" if single else options.strategy,
        precision=precision,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=options.progress,
        enable_model_summary=False,
        # the same seed gives the same numbers on CPU; on a GPU, deterministic kernels where they exist (a warning
        # names the ones that have none, e.g. the backward of adaptive average pooling)
        deterministic=True if on_cpu else "warn",
        default_root_dir=folder,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
    )
    return trainer, best


def _epoch(checkpoint: Path) -> int:
    """The 0-based epoch a Lightning checkpoint was saved after."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def _phase(phase_dir: Path, model, train, val, rule: str, options: Options, resumed: list[str]) -> dict:
    """Train one phase (or find it finished) and return its selection record: the rule, the checkpoint it selects,
    the 1-based epoch of that checkpoint and the epochs trained. The record is written once the phase is over, so a
    finished phase is not trained again when a later phase or setting is resumed."""
    record_file = phase_dir / "selection.json"
    if record_file.is_file():
        return json.loads(record_file.read_text())
    validate = rule != "last-epoch"
    trainer, best = _trainer(options, phase_dir, options.epochs, validate=validate)
    last = phase_dir / "last.ckpt"
    resume = str(last) if last.is_file() else None
    if resume:
        log.info("resuming %s from %s (epoch %d done)", phase_dir, last, _epoch(last) + 1)
        resumed.append(str(phase_dir))
    model.plateau = validate
    trainer.fit(model, train, val if validate else None, ckpt_path=resume)
    chosen = Path(best.best_model_path) if best is not None and best.best_model_path else last
    record = {"rule": rule, "checkpoint": chosen.name}
    if not is_follower():  # rank 0 wrote the checkpoints
        record.update(epoch=_epoch(chosen) + 1, epochs_trained=_epoch(last) + 1, max_epochs=options.epochs)
        write_json_atomic(record_file, record)
    return record


def train_and_predict(
    plan: list[tuple[pd.DataFrame, str]],
    validation: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    seed: int,
    options: Options,
    folder: Path,
    cache: ImageCache,
) -> tuple[dict[str, np.ndarray], list[str], list[dict]]:
    """Train the phases of one setting and seed (each a training frame and its selection rule; each phase starts from
    the previous phase's selected weights) and predict with the last phase's selected weights: probabilities
    {'val': (n, 14) on the set the last phase validates on, 'test': (n_test, 14)}; the phases resumed from a
    checkpoint; and each phase's selection record. `validation` holds the `real` and the `synthetic` validation
    frames."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        return _train_and_predict(plan, validation, test, seed, options, folder, cache)
    finally:  # Lightning sets the flag process-wide; give the caller's back
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def validation_set(rule: str) -> str:
    """Which validation frame a phase with this rule validates on (and, as the last phase, tunes thresholds on)."""
    return "real" if rule == "real-validation" else "synthetic"


def _train_and_predict(plan, validation, test, seed, options, folder, cache):
    L.seed_everything(seed, workers=True, verbose=False)
    model = Classifier(width=options.width, lr=options.lr, backbone=options.backbone)
    if options.backbone_weights is not None:
        load_pretrained(model.net, options.backbone_weights, options.backbone)
    loaders = {name: _loader(frame, options, cache, shuffle=False, augment=False) for name, frame in validation.items()}
    weights, resumed, records = None, [], []
    for number, (frame, rule) in enumerate(plan):
        phase_dir = folder / f"phase{number}"
        if weights is not None:  # the next phase starts from the previous phase's selected weights
            model = Classifier.load_from_checkpoint(weights, weights_only=True)
        train = _loader(frame, options, cache, shuffle=True, augment=True)
        record = _phase(phase_dir, model, train, loaders[validation_set(rule)], rule, options, resumed)
        records.append(record)
        weights = phase_dir / record["checkpoint"]
    if is_follower():
        return {}, resumed, records
    # rank 0 predicts on one device: a distributed sampler would give it only its share of the images
    model = Classifier.load_from_checkpoint(weights, weights_only=True)
    trainer, _ = _trainer(options, folder / "predict", 1, single=True)
    tuning = validation[validation_set(plan[-1][1])]
    out = {}
    for name, frame in (("val", tuning), ("test", test)):
        batches = trainer.predict(model, _loader(frame, options, cache, shuffle=False, augment=False))
        out[name] = torch.cat(batches).float().numpy() if batches else np.zeros((0, 14), np.float32)
    return out, resumed, records
