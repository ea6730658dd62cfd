"""Clip-level classification: a linear layer on the final-norm CLS token, as the paper's PolypDiag protocol.

Reference §5.1: ``LinearClassifier`` = ``Linear(D -> C)``, weight N(0, 0.01), bias 0, reading ``model(x)`` (the CLS
after the final LayerNorm); trained with cross-entropy. ``multi_label=True`` swaps softmax/CE for independent
sigmoids and binary cross-entropy (a clip may carry several labels at once).

Outputs:
- ``forward(feats)`` -> logits ``[B, C]``;
- ``predict(logits)`` -> probabilities ``[B, C]`` (softmax rows sum to 1; multi-label: independent sigmoids);
- ``loss(logits, targets)``: multi-class targets are class indices ``long [B]`` (``-100`` = unlabelled, ignored);
  multi-label targets are ``float [B, C]`` in {0, 1} (rows with any negative value are ignored).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core_model.heads.base import TaskHead, check_classes
from core_model.heads.features import BackboneFeatures

__all__ = ["ClassificationHead"]

IGNORE_INDEX = -100


class ClassificationHead(TaskHead):
    task = "classification"

    def __init__(self, embed_dim: int, classes: list[str], multi_label: bool = False, dropout: float = 0.0):
        super().__init__()
        self.classes = check_classes(classes, "ClassificationHead")
        self.multi_label = bool(multi_label)
        self.embed_dim = int(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout_p = float(dropout)
        self.linear = nn.Linear(self.embed_dim, len(self.classes))
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.linear.bias)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def forward(self, feats: BackboneFeatures) -> torch.Tensor:
        # feats.cls: [B, D] -> logits [B, C]
        return self.linear(self.dropout(feats.cls))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logits.float()
        if self.multi_label:
            targets = targets.to(logits.device, torch.float32)
            if targets.shape != logits.shape:
                raise ValueError(
                    f"multi-label targets must be [B, {self.num_classes}], got {tuple(targets.shape)}"
                )
            keep = (targets >= 0).all(dim=1)
            if not bool(keep.any()):
                return {"loss": logits.sum() * 0.0, "loss_bce": logits.sum() * 0.0}
            bce = F.binary_cross_entropy_with_logits(logits[keep], targets[keep])
            return {"loss": bce, "loss_bce": bce}
        targets = targets.to(logits.device, torch.long)
        if targets.shape != logits.shape[:1]:
            raise ValueError(f"class-index targets must be [B]={logits.shape[0]}, got {tuple(targets.shape)}")
        if not bool((targets != IGNORE_INDEX).any()):
            return {"loss": logits.sum() * 0.0, "loss_ce": logits.sum() * 0.0}
        ce = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
        return {"loss": ce, "loss_ce": ce}

    @torch.no_grad()
    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities ``[B, C]`` (float32)."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def config(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "multi_label": self.multi_label, "dropout": self.dropout_p}

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], embed_dim: int, patch_size: int = 16, depth: int = 12
    ) -> ClassificationHead:
        return cls(
            embed_dim,
            list(cfg.get("classes", [])),
            multi_label=bool(cfg.get("multi_label", False)),
            dropout=float(cfg.get("dropout", 0.0)),
        )
