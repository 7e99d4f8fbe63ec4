"""The classifier as a LightningModule: a ResNet-50 or DenseNet-121 (torchvision layouts, ImageNet weights from a
local file) with a 14-way head, masked BCE (U-Ignore entries carry no loss), Adam, validation macro-AUROC for
checkpoints and early stopping.

Validation AUROC under DDP is computed once on every rank's predictions gathered together (each row once): AUROC does
not average over shards, so a mean of per-rank values would not be the validation set's AUROC."""

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
        self.plateau = True  # lower the learning rate on validation plateaus (off for a fixed schedule)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_entry = self.loss(logits, y) * mask
        return per_entry.sum() / mask.sum().clamp(min=1)

    def training_step(self, batch, batch_idx):
        x, y, mask, _ = batch
        loss = self._loss(self(x), y, mask)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y, mask, index = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y, mask), prog_bar=True, batch_size=len(x), sync_dist=True)
        self._val.append((index.cpu(), torch.sigmoid(logits).float().cpu(), y.cpu(), mask.cpu()))

    def _gathered(self) -> tuple[np.ndarray, ...]:
        """(probs, y, mask) of the whole validation set, every rank's rows once, in row order."""
        index, probs, y, mask = (torch.cat(t) for t in zip(*self._val, strict=True))
        self._val.clear()
        local = torch.cat([t.double() for t in (index[:, None], probs, y, mask)], dim=1)
        if self.trainer.world_size > 1:
            from torchmetrics.utilities.distributed import gather_all_tensors  # uneven shards allowed

            local = torch.cat(gather_all_tensors(local.to(self.device))).cpu()
        rows = local.numpy()
        _, first = np.unique(rows[:, 0], return_index=True)  # a distributed sampler pads with repeated rows
        rows, classes = rows[first], probs.shape[1]
        return rows[:, 1 : 1 + classes], rows[:, 1 + classes : 1 + 2 * classes], rows[:, 1 + 2 * classes :] > 0

    def on_validation_epoch_end(self):
        probs, y, mask = self._gathered()
        per_class = [auroc(y[m, c], probs[m, c]) for c in range(y.shape[1]) for m in [mask[:, c]]]
        value = float(np.nanmean(per_class)) if not np.all(np.isnan(per_class)) else 0.5
        self.log(MONITOR, value, prog_bar=True)  # the same value on every rank: nothing to reduce

    def predict_step(self, batch, batch_idx):
        return torch.sigmoid(self(batch[0])).float()

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.plateau:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": MONITOR}}
