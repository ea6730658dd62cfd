"""Building blocks shared by the fast backbone and the naive reference: DropPath, MLP, table resizing, init.

Every function here reproduces the official numerics (reference §1.2–§1.4, §6.7) exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DropPath", "Mlp", "drop_path", "init_vit_weights", "resize_pos_embed", "resize_time_embed"]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth with one draw per index of dim 0 (official ``DropPath``), scaled by 1/keep."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> dropout -> fc2 -> dropout; keys ``fc1``/``fc2`` as the official model."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # approximate="none": the official activation
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def resize_pos_embed(pos_embed: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """The spatial table for a ``grid_h x grid_w`` patch grid, exactly as the official ``forward_features``.

    ``pos_embed``: [1, 1 + P*P, D] built for a square P x P grid. The official code picks its branch on the token
    count alone: when 1 + grid_h*grid_w equals the table length the table is used unchanged, in flattened order,
    even for a non-square grid (the "196-token quirk", e.g. 7x28). Otherwise the patch part is resized with the
    legacy ``nearest`` mode (src = floor(dst * in / out)) and the CLS entry is kept. Returns [1, 1 + gh*gw, D].
    """
    n_table = pos_embed.shape[1]
    if 1 + grid_h * grid_w == n_table:
        return pos_embed
    side = math.isqrt(n_table - 1)
    cls_pos = pos_embed[:, :1]
    # patch table: [1, P*P, D] -> [1, D, P, P]
    table = pos_embed[:, 1:].transpose(1, 2).reshape(1, pos_embed.shape[2], side, side)
    table = F.interpolate(table, size=(grid_h, grid_w), mode="nearest")
    # [1, D, gh, gw] -> [1, gh*gw, D] in (h w) order
    return torch.cat([cls_pos, table.flatten(2).transpose(1, 2)], dim=1)


def resize_time_embed(time_embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``time_embed`` [1, T0, D] resized to [1, num_frames, D] with 1-D legacy ``nearest`` (8->3 picks [0, 2, 5])."""
    if time_embed.shape[1] == num_frames:
        return time_embed
    return F.interpolate(time_embed.transpose(1, 2), size=num_frames, mode="nearest").transpose(1, 2)


def init_vit_weights(model: nn.Module, temporal_fc_names: str = "temporal_fc") -> None:
    """Official initialisation (reference §1.4): trunc-normal(0.02, ±2) Linear weights with zero bias, LayerNorm 1/0,
    the patch Conv2d keeps PyTorch's default, and ``temporal_fc`` zeroed in *every* block (the official skip-first
    loop is used up by the ``blocks`` container, verified)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for name, m in model.named_modules():
        if name.endswith(temporal_fc_names) and isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
