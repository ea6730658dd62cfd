"""Parameter-efficient fine-tuning: LoRA on the backbone's attention projections (frozen backbone otherwise).

``apply_lora(backbone, rank, alpha)`` freezes every backbone parameter and wraps each ``nn.Linear`` named
``qkv`` or ``proj`` inside ``attn`` / ``temporal_attn`` (spatial and temporal attention of every block) as
``y = W x + b + (alpha / rank) * B(A(x))`` with ``A`` Kaiming-initialised and ``B`` zero, so training starts
exactly at the pre-trained function. ``merge_lora`` folds ``B @ A`` into ``W`` and puts plain ``nn.Linear``
modules back: the exported model has the standard state-dict keys and loads anywhere, with no extra cost at
inference. ``freeze_backbone`` is the ``linear`` mode (heads only).
"""

from __future__ import annotations

import math

import torch
from torch import nn

TARGETS = ("attn.qkv", "attn.proj", "temporal_attn.qkv", "temporal_attn.proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank = int(rank)
        self.scaling = float(alpha) / self.rank
        self.lora_a = nn.Parameter(torch.empty(self.rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, self.rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight ``W + s * B A`` (for code that reads ``.weight`` directly, e.g. the backbone's
        eval-time merge of ``temporal_attn.proj`` into ``temporal_fc``)."""
        return self.base.weight + (self.lora_b @ self.lora_a) * self.scaling

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., in] -> [..., out]
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scaling

    def merged(self) -> nn.Linear:
        lin = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            w = self.base.weight + (self.lora_b @ self.lora_a) * self.scaling
            lin.weight.copy_(w)
            if self.base.bias is not None:
                lin.bias.copy_(self.base.bias)
        return lin.to(self.base.weight.device, self.base.weight.dtype)


def freeze_backbone(backbone: nn.Module) -> None:
    for p in backbone.parameters():
        p.requires_grad_(False)


def _replace(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)


def apply_lora(backbone: nn.Module, rank: int = 8, alpha: float = 16.0) -> int:
    """Freeze ``backbone`` and add LoRA adapters; returns the number of trainable adapter parameters."""
    freeze_backbone(backbone)
    names = [
        n
        for n, m in backbone.named_modules()
        if isinstance(m, nn.Linear) and any(n.endswith(t) for t in TARGETS)
    ]
    if not names:
        raise ValueError("no attention projections (attn.qkv / attn.proj) found in the backbone for LoRA")
    count = 0
    for n in names:
        lora = LoRALinear(backbone.get_submodule(n), rank, alpha)
        _replace(backbone, n, lora)
        count += lora.lora_a.numel() + lora.lora_b.numel()
    return count


def merge_lora(backbone: nn.Module) -> int:
    """Fold every adapter into its linear layer (in place); returns how many were merged."""
    names = [n for n, m in backbone.named_modules() if isinstance(m, LoRALinear)]
    for n in names:
        _replace(backbone, n, backbone.get_submodule(n).merged())
    return len(names)
