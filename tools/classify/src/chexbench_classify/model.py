"""The classifier as a LightningModule: a ResNet-50 or DenseNet-121 (torchvision layouts, ImageNet weights from a
local file) with a 14-way head, masked BCE (U-Ignore entries carry no loss), Adam, validation macro-AUROC for
checkpoints and early stopping."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from chexbench_common.checkpoints import check_layout, read_state_dict
from chexbench_common.hashing import sha256_file

from .backbones import BACKBONES, build, canonical_keys
from .metrics import auroc

MONITOR = "val_macro_auroc"


def load_pretrained(net: torch.nn.Module, path: Path, backbone: str) -> str:
    """Pre-trained trunk weights (a plain state_dict: torchvision ImageNet, or torchxrayvision's DenseNet exported
    with `torch.save(model.state_dict(), ...)`) into `net`; the head stays new. Returns the file's sha256."""
    path = Path(path)
    spec = BACKBONES[backbone]
    state = read_state_dict(path, "backbone weights", "pass --backbone-weights with a local file")
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith(spec.head)}
    got = {k: v for k, v in canonical_keys(state).items() if not k.startswith(spec.head) and k not in spec.extra_keys}
    source = "a torchxrayvision DenseNet" if spec.normalise == "xrv" else f"a torchvision {type(net).__name__}"
    check_layout(path, got, expected, f"{source} state_dict")
    net.load_state_dict(got, strict=False)
    return sha256_file(path)


class Classifier(L.LightningModule):
    def __init__(
        self,
        classes: int = 14,
        width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        backbone: str = "resnet50",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net, self.head = build(backbone, classes, width)
        self.loss = torch.nn.BCEWithLogitsLoss(reduction="none")
        self._val: list[tuple[torch.Tensor, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, batch) -> torch.Tensor:
        x, y, mask = batch
        per_entry = self.loss(self(x), y) * mask
        return per_entry.sum() / mask.sum().clamp(min=1)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y, mask = batch
        logits = self(x)
        self.log("val_loss", self._loss(batch), prog_bar=True, batch_size=len(x), sync_dist=True)
        self._val.append((torch.sigmoid(logits).float().cpu(), y.cpu(), mask.cpu()))

    def on_validation_epoch_end(self):
        probs, y, mask = (torch.cat(t).numpy() for t in zip(*self._val, strict=True))
        self._val.clear()
        per_class = [auroc(y[m, c], probs[m, c]) for c in range(y.shape[1]) for m in [mask[:, c].astype(bool)]]
        value = float(np.nanmean(per_class)) if not np.all(np.isnan(per_class)) else 0.5
        self.log(MONITOR, value, prog_bar=True, sync_dist=True)

    def predict_step(self, batch, batch_idx):
        return torch.sigmoid(self(batch[0])).float()

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": MONITOR}}
