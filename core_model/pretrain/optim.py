"""Optimisation pieces of the recipe (reference §3.7): parameter groups, per-iteration schedules, per-parameter
gradient clipping, the frozen last layer and the EMA teacher — the per-tensor work done with ``torch._foreach_*``
kernels rather than Python loops over tensors.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

from core_model.training import cosine_scheduler  # the one home; re-exported for the recipe

__all__ = [
    "cancel_last_layer_grads",
    "clip_gradients_per_param",
    "cosine_scheduler",
    "ema_update",
    "param_groups",
]


def param_groups(model: nn.Module) -> list[dict]:
    """Official ``get_params_groups``: weights (ndim > 1, not ``.bias``) regularised — this includes pos_embed,
    cls_token, time_embed — biases and 1-D tensors with weight decay 0. Frozen parameters are left out."""
    regularized, not_regularized = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith(".bias") or p.ndim <= 1:
            not_regularized.append(p)
        else:
            regularized.append(p)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


@torch.no_grad()
def clip_gradients_per_param(params: Iterable[torch.nn.Parameter], clip: float) -> torch.Tensor | None:
    """Scale every gradient tensor by ``min(1, clip / (||g||₂ + 1e-6))`` (per tensor, not a global norm).

    Returns the per-tensor norms before clipping (``[n]``) or None when no parameter has a gradient."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    norms = torch.stack(torch._foreach_norm(grads)).float()  # norms: [n]
    factors = (clip / (norms + 1e-6)).clamp_(max=1.0)
    by_dtype: dict[torch.dtype, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for g, f in zip(grads, factors.unbind()):
        gs, fs = by_dtype.setdefault(g.dtype, ([], []))
        gs.append(g)
        fs.append(f.to(g.dtype))
    for gs, fs in by_dtype.values():
        torch._foreach_mul_(gs, fs)
    return norms


def cancel_last_layer_grads(model: nn.Module, epoch: int, freeze_last_layer: int) -> None:
    """While ``epoch < freeze_last_layer`` drop the gradients of the head's last layer (official behaviour)."""
    if epoch >= freeze_last_layer:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


def student_update(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    student: nn.Module,
    clip_grad: float,
    epoch: int,
    freeze_last_layer: int,
) -> None:
    """One optimiser step of the student from ``loss``: gradients (scaled under float16 ``scaler``), clipped per
    parameter at ``clip_grad`` (0: not clipped), the head's last layer held still during its first
    ``freeze_last_layer`` epochs, then the step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip_grad > 0:
        clip_gradients_per_param(student.parameters(), clip_grad)
    cancel_last_layer_grads(student, epoch, freeze_last_layer)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


@torch.no_grad()
def ema_update(
    teacher_params: list[torch.Tensor], student_params: list[torch.Tensor], momentum: float
) -> None:
    """θ_t ← m·θ_t + (1−m)·θ_s for every pair (two fused foreach kernels)."""
    torch._foreach_mul_(teacher_params, momentum)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)
