"""``EndoFMTaskModel``: one backbone pass feeding any set of task heads (multi-task on one backbone).

```python
model = EndoFMTaskModel(backbone, {"classification": ClassificationHead(...), "segmentation": ..., "detection": ...})
out = model(x)                        # x [B, 3, T, H, W] -> {"classification": logits, "segmentation": ..., ...}
losses = model.losses(out, targets)   # targets {task: head targets}; tasks without targets are skipped
preds = model.predict(x)              # {task: head.predict(...)}
```

The backbone runs exactly once per call: ``forward_intermediates`` over the union of the blocks the heads read plus
the last block, whose output goes through the backbone's final LayerNorm to give the tokens every head receives
(``BackboneFeatures``, see ``core_model.heads.features``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from core_model.heads.base import TaskHead
from core_model.heads.classification import ClassificationHead
from core_model.heads.detection import DetectionHead
from core_model.heads.features import BackboneFeatures
from core_model.heads.segmentation import SegmentationHead

__all__ = ["HEAD_TYPES", "EndoFMTaskModel", "build_head"]

HEAD_TYPES: dict[str, type[TaskHead]] = {
    "classification": ClassificationHead,
    "segmentation": SegmentationHead,
    "detection": DetectionHead,
}


def build_head(task: str, cfg: Mapping[str, Any], embed_dim: int, patch_size: int, depth: int) -> TaskHead:
    """A head from its ``meta.heads[task]`` config; unknown tasks and bad configs raise ``ValueError``."""
    if task not in HEAD_TYPES:
        raise ValueError(f"unknown task head {task!r}; known: {sorted(HEAD_TYPES)}")
    if not isinstance(cfg, Mapping):
        raise ValueError(f"head {task!r}: config must be a JSON object, got {type(cfg).__name__}")
    try:
        return HEAD_TYPES[task].from_config(dict(cfg), embed_dim, patch_size=patch_size, depth=depth)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"head {task!r}: bad config {dict(cfg)!r}: {exc}") from exc


class EndoFMTaskModel(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, TaskHead],
        task_weights: Mapping[str, float] | None = None,
    ):
        super().__init__()
        if not heads:
            raise ValueError("EndoFMTaskModel needs at least one head")
        for task, head in heads.items():
            if task != head.task:
                raise ValueError(f"head under key {task!r} is a {type(head).__name__} (task {head.task!r})")
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))
        self.task_weights = {t: float((task_weights or {}).get(t, 1.0)) for t in self.heads}
        depth = self.depth
        self._blocks = sorted(
            {b for h in self.heads.values() for b in h.required_blocks(depth)} | {depth - 1}
        )

    @property
    def depth(self) -> int:
        return len(self.backbone.blocks)

    @property
    def patch_size(self) -> int:
        return int(self.backbone.cfg.patch_size)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def no_weight_decay(self) -> set[str]:
        """Parameter names (in this model's namespace) that an optimiser should not decay."""
        names = getattr(self.backbone, "no_weight_decay", lambda: set())()
        return {f"backbone.{n}" for n in names}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def features(self, x: torch.Tensor) -> BackboneFeatures:
        """One backbone pass: x ``[B, 3, T, H, W]`` -> ``BackboneFeatures``."""
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch [B, 3, T, H, W], got shape {tuple(x.shape)}")
        _, _, t, h, w = x.shape
        p = self.patch_size
        outs = self.backbone.forward_intermediates(x, indices=self._blocks)  # each [B, 1+N*T, D], pre-norm
        blocks = dict(zip(self._blocks, outs))
        tokens = self.backbone.norm(blocks[self.depth - 1])
        return BackboneFeatures(
            tokens=tokens,
            num_frames=t,
            grid=(h // p, w // p),
            image_size=(h, w),
            patch_size=p,
            intermediates=blocks,
        )

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        feats = self.features(x)
        return {task: head(feats) for task, head in self.heads.items()}

    def losses(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Per-task losses (``"<task>/<name>"``) and the weighted total ``"loss"`` over tasks that have targets."""
        unknown = sorted(set(targets) - set(self.heads))
        if unknown:
            raise ValueError(f"targets for tasks {unknown} but the model has heads {self.tasks}")
        out: dict[str, torch.Tensor] = {}
        total = None
        for task, tgt in targets.items():
            if tgt is None:
                continue
            parts = self.heads[task].loss(outputs[task], tgt)
            for name, value in parts.items():
                out[f"{task}/{name}"] = value
            weighted = self.task_weights[task] * parts["loss"]
            total = weighted if total is None else total + weighted
        if total is None:
            raise ValueError("no targets given: nothing to compute a loss from")
        out["loss"] = total
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        """``{task: head.predict(output)}``: class probabilities ``[B, C]``, segmentation probabilities
        ``[B, T, K, H, W]``, detection: a list of ``B*T`` per-frame box dicts (model-input pixels)."""
        outputs = self.forward(x)
        return {task: self.heads[task].predict(outputs[task]) for task in self.heads}
