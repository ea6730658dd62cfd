"""DINO projection head and the multi-crop wrapper (reference §3.4, §3.6; ``vision_transformer.py`` ``DINOHead``,
``utils/utils.py`` ``MultiCropWrapper``).

``DINOHead``: Linear(D→2048), GELU, Linear(2048→2048), GELU, Linear(2048→256), L2 normalise, then a weight-normalised
Linear(256→out_dim) without bias. The last layer stores ``weight_g [out, 1]`` and ``weight_v [out, in]`` as its own
parameters, so state-dict keys are exactly the official ``head.last_layer.weight_g/weight_v`` (legacy
``nn.utils.weight_norm`` naming, dim=0) and the official checkpoints load with no renaming. With
``norm_last_layer`` the gain is filled with 1 and frozen.

``MultiCropWrapper`` runs the backbone once per group of consecutive views with the same shape (the official split
points [1, 2, 4, 6, 8, 10] for 2 global + 8 local views), concatenates the CLS features in view order and applies the
head once.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DINOHead", "MultiCropWrapper", "WeightNormLinear", "group_views"]


class WeightNormLinear(nn.Module):
    """``y = x @ (g * v / ||v||)ᵀ`` with the norm over each output row (``weight_norm(dim=0)``), no bias."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(torch.empty(out_features, 1))
        bound = 1 / in_features**0.5  # nn.Linear's default init, then g = ||v|| as weight_norm does
        nn.init.uniform_(self.weight_v, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=1, keepdim=True))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * F.normalize(self.weight_v, dim=1, eps=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class DINOHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        norm_last_layer: bool = True,
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            # use_bn: BatchNorm after each hidden Linear (DINO's ``use_bn_in_head``; off in the official Endo-FM run)
            def hidden(d_in: int) -> list[nn.Module]:
                return [
                    nn.Linear(d_in, hidden_dim),
                    *([nn.BatchNorm1d(hidden_dim)] if use_bn else []),
                    nn.GELU(),
                ]

            layers: list[nn.Module] = hidden(in_dim)
            for _ in range(nlayers - 2):
                layers += hidden(hidden_dim)
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)
        self.last_layer.weight_g.data.fill_(1.0)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)  # x: [N, bottleneck]
        x = F.normalize(x, dim=-1, p=2, eps=1e-12)
        return self.last_layer(x)  # [N, out_dim]


def group_views(shapes: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` runs of consecutive views with equal shape (the official ``unique_consecutive``)."""
    groups: list[tuple[int, int]] = []
    start = 0
    for v in range(1, len(shapes) + 1):
        if v == len(shapes) or shapes[v] != shapes[start]:
            groups.append((start, v))
            start = v
    return groups


class MultiCropWrapper(nn.Module):
    """Backbone + head over a list of views ``[B, 3, T_v, S_v, S_v]``; returns head outputs ``[V*B, out_dim]``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(views, torch.Tensor):
            views = [views]
        feats = []
        for start, end in group_views([tuple(v.shape[2:]) for v in views]):
            x = (
                torch.cat(views[start:end]) if end - start > 1 else views[start]
            )  # x: [(end-start)*B, 3, T, S, S]
            feats.append(self.backbone(x))  # CLS: [(end-start)*B, D]
        return self.head(torch.cat(feats))
