"""The small contract every task head follows (so ``EndoFMTaskModel`` and the ``Predictor`` can treat them alike).

A head is an ``nn.Module`` with:

- ``task``: ``"classification"`` | ``"segmentation"`` | ``"detection"`` (the key in ``meta.heads``);
- ``classes``: the label names it predicts (segmentation: foreground classes; background is implicit class 0);
- ``required_blocks(depth)``: intermediate block indices it reads (``[]`` for none);
- ``forward(feats: BackboneFeatures)``: raw outputs (logits), documented per head;
- ``loss(outputs, targets) -> dict[str, Tensor]`` with the total under ``"loss"``;
- ``predict(outputs, ...)``: outputs turned into probabilities / masks / boxes at model-input resolution;
- ``config() -> dict`` (JSON, stored in ``ModelMeta.heads[task]``) and ``from_config(cfg, embed_dim, patch_size, depth)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from core_model.heads.features import BackboneFeatures

__all__ = ["TaskHead"]


class TaskHead(nn.Module):
    task: ClassVar[str] = ""
    classes: list[str]

    def required_blocks(self, depth: int) -> list[int]:
        return []

    def forward(self, feats: BackboneFeatures) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, outputs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(  # pragma: no cover - abstract
        cls, cfg: dict[str, Any], embed_dim: int, patch_size: int = 16, depth: int = 12
    ) -> TaskHead:
        raise NotImplementedError


def check_classes(classes: Any, what: str) -> list[str]:
    """A non-empty list of distinct non-empty strings, or a ValueError saying what is wrong."""
    if isinstance(classes, str) or not isinstance(classes, list | tuple) or not classes:
        raise ValueError(f"{what}: classes must be a non-empty list of names, got {classes!r}")
    names = [str(c) for c in classes]
    if any(not n for n in names):
        raise ValueError(f"{what}: empty class name in {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: duplicate class names in {names!r}")
    return names
