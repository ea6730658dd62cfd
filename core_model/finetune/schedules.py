"""Optimisation recipe pieces: per-iteration schedules (precomputed, as dino's ``cosine_scheduler``) and parameter
groups with layer-wise learning-rate decay (BEiT / MAE ``param_groups_lrd``).

Layer ids for an Endo-FM backbone of depth L: the embeddings (``cls_token``, ``pos_embed``, ``time_embed``,
``patch_embed.*``) are layer 0, ``blocks.i.*`` is layer i + 1, everything else (final ``norm``, heads, adapters'
own parameters outside blocks) is layer L + 1. A group's learning rate is ``lr * lr_scale`` with
``lr_scale = layer_decay ** (L + 1 - layer_id)``; so with decay 1.0 every group trains at the base rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import torch

from core_model.training import cosine_scheduler  # the one home; re-exported for the recipe

__all__ = [
    "apply_lr",
    "cosine_scheduler",
    "layer_id",
    "multistep_scheduler",
    "param_groups_lrd",
    "poly_scheduler",
]

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
_EMBED = ("cls_token", "pos_embed", "time_embed", "patch_embed")


def poly_scheduler(base_value: float, total_iters: int, power: float = 0.9) -> np.ndarray:
    """TransUNet's poly decay (reference §5.2): ``base * (1 - it / total) ** power`` for it = 0 .. total - 1."""
    it = np.arange(total_iters, dtype=np.float64)
    return base_value * (1.0 - it / max(total_iters, 1)) ** power


def multistep_scheduler(
    base_value: float,
    total_iters: int,
    milestones: Iterable[int],
    gamma: float = 0.5,
    warmup_iters: int = 0,
    warmup_factor: float = 1 / 3,
) -> np.ndarray:
    """maskrcnn-benchmark's ``WarmupMultiStepLR`` (KUMC/STFT, reference §5.3): linear warm-up from
    ``warmup_factor * base`` then multiplied by ``gamma`` at each milestone (iterations)."""
    it = np.arange(total_iters, dtype=np.float64)
    ms = np.array(sorted(milestones), dtype=np.float64)
    steps = np.searchsorted(ms, it, side="right")
    out = base_value * gamma**steps
    if warmup_iters > 0:
        alpha = np.clip(it / warmup_iters, 0, 1)
        factor = np.where(it < warmup_iters, warmup_factor * (1 - alpha) + alpha, 1.0)
        out = out * factor
    return out


def layer_id(name: str, depth: int) -> int:
    """Layer id of a parameter name (prefixes such as ``backbone.`` are ignored)."""
    m = _BLOCK.search(name)
    if m:
        return int(m.group(1)) + 1
    leaf = name.split("backbone.", 1)[-1]
    if leaf.startswith(_EMBED):
        return 0
    return depth + 1


def param_groups_lrd(
    model: torch.nn.Module,
    weight_decay: float,
    layer_decay: float,
    depth: int,
    no_weight_decay: Iterable[str] = (),
) -> list[dict]:
    """Parameter groups for AdamW/SGD: one per (layer, decay/no-decay), each with ``lr_scale``.

    No weight decay for 1-D tensors, biases and the names in ``no_weight_decay`` (matched as suffixes, so the
    backbone's ``no_weight_decay()`` set works through a ``backbone.`` prefix). Frozen parameters are left out."""
    skip = tuple(no_weight_decay)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = (
            p.ndim == 1 or name.endswith(".bias") or any(name == s or name.endswith("." + s) for s in skip)
        )
        lid = layer_id(name, depth)
        key = (lid, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": layer_decay ** (depth + 1 - lid),
                "layer_id": lid,
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * lr_scale`` (call once per iteration before ``step``)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
