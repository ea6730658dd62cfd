"""DINO loss over the teacher/student view pairs (reference §3.5, ``train_ssl.py`` ``DINOLoss``).

Student logits are divided by ``student_temp`` (0.1) and split into V per-view blocks; teacher logits are centred,
sharpened with the teacher temperature (0.04, optionally warmed up) and split into 2. The loss is the mean, over
the 2·(V-1) pairs (teacher view i, student view v ≠ i), of the batch-mean cross-entropy ``-Σ_k q_ik log p_vk`` —
18 pairs for 2 global + 8 local views. The centre (``[1, out_dim]``, starts at zero) is updated after each loss with
momentum 0.9 from the raw teacher outputs, averaged over the global batch (all-reduced across ranks). With
``center_init="first_batch"`` the centre starts at the first batch's mean teacher output instead of zero, so the
dimension every sample shares at initialisation is removed from the first step on (with a zero start a sharp teacher
gives every sample the same one-hot target for the first few steps, and a short run can collapse onto it).

Computed in fp32 whatever the autocast dtype of the head outputs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DINOLoss", "sinkhorn_knopp", "teacher_temp_schedule"]


def teacher_temp_schedule(warmup_temp: float, temp: float, warmup_epochs: int, epochs: int) -> np.ndarray:
    """Per-epoch teacher temperature: linear warm-up then constant (official: 0.04 throughout)."""
    return np.concatenate(
        (np.linspace(warmup_temp, temp, warmup_epochs), np.ones(max(epochs - warmup_epochs, 0)) * temp)
    )


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, n_iter: int = 3) -> torch.Tensor:
    """Teacher targets by Sinkhorn-Knopp equipartition (SwAV, DINOv2) instead of centring: ``logits [N, K]`` (already
    divided by the temperature) -> row-stochastic ``[N, K]`` whose columns carry about equal mass over the global
    batch (all-reduced across ranks). It keeps a small batch from giving every sample the same target."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    top = logits.max()
    if world > 1:
        # one shift for every rank, so the global sums stay consistent
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    q = (logits - top).exp().t()  # q: [K, N]; the shift cancels in the normalisations
    k, n = q.shape[0], q.shape[1] * world

    def reduce(x: torch.Tensor) -> torch.Tensor:
        if world > 1:
            dist.all_reduce(x)
        return x

    q /= reduce(q.sum()).clamp_min(1e-30)
    for _ in range(n_iter):
        q /= reduce(q.sum(dim=1, keepdim=True)).clamp_min(1e-30)  # every prototype: mass 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True).clamp_min(1e-30)  # every sample: mass 1/N
        q /= n
    return (q * n).t()


class DINOLoss(nn.Module):
    def __init__(
        self,
        out_dim: int,
        n_views: int,
        teacher_temps: np.ndarray,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        n_global: int = 2,
        center_init: str = "zero",
        centering: str = "center",
    ) -> None:
        super().__init__()
        if centering not in ("center", "sinkhorn"):
            raise ValueError(f"centering must be 'center' or 'sinkhorn', not {centering!r}")
        self.centering = centering
        if center_init not in ("zero", "first_batch"):
            raise ValueError(f"center_init must be 'zero' or 'first_batch', not {center_init!r}")
        self.center_init = center_init
        self.n_views, self.n_global = n_views, n_global
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temps = [float(t) for t in teacher_temps]

    def teacher_temp(self, epoch: int) -> float:
        """The teacher temperature in ``epoch`` (the last value past the schedule's end)."""
        return self.teacher_temps[min(epoch, len(self.teacher_temps) - 1)]

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, epoch: int) -> torch.Tensor:
        """``student_out: [V*B, K]``, ``teacher_out: [2*B, K]`` (view-major) -> scalar loss; updates the centre."""
        temp = self.teacher_temp(epoch)
        if self.center_init == "first_batch" and not bool(self.center.any()):
            # not yet set (a trained centre is never exactly zero)
            self.center.copy_(self._batch_mean(teacher_out))
        s = (student_out.float() / self.student_temp).log_softmax(dim=-1)
        s = s.view(self.n_views, -1, s.shape[-1])  # s: [V, B, K]
        if self.centering == "sinkhorn":
            t = sinkhorn_knopp(teacher_out.float().detach() / temp)
        else:
            t = F.softmax((teacher_out.float() - self.center) / temp, dim=-1).detach()
        t = t.view(self.n_global, -1, t.shape[-1])  # t: [G, B, K]
        batch = s.shape[1]
        cross = (
            -torch.einsum("gbk,vbk->gv", t, s) / batch
        )  # cross[i, v]: batch-mean CE of teacher i vs student v
        same = torch.zeros_like(cross, dtype=torch.bool)
        same[torch.arange(self.n_global), torch.arange(self.n_global)] = (
            True  # no term pairs a view with itself
        )
        n_terms = self.n_global * self.n_views - self.n_global
        loss = cross.masked_fill(same, 0.0).sum() / n_terms
        self.update_center(teacher_out)
        return loss

    @torch.no_grad()
    def _batch_mean(self, teacher_out: torch.Tensor) -> torch.Tensor:
        batch_center = teacher_out.float().sum(dim=0, keepdim=True)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            world = dist.get_world_size()
        return batch_center / (teacher_out.shape[0] * world)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = self._batch_mean(teacher_out)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
