"""Per-frame semantic segmentation from the tokens of each frame: a progressive-upsampling decoder over several
transformer blocks, output at the full input resolution.

Architecture (the paper used TransUNet's ``DecoderCup`` over Endo-FM tokens, reference §5.2; ours keeps its
progressive x2 upsampling but takes the skips from intermediate ViT blocks instead of an R50 stem, UNETR-style):

1. final-norm tokens -> per-frame maps ``[B*T, D, Hp, Wp]`` -> Conv3x3 + GN + ReLU (stride 16);
2. ``log2(patch_size)`` stages (4 for 16-px patches), each: bilinear x2, concatenate the projected skip (LayerNorm +
   1x1 conv of an intermediate block's tokens, bilinearly resized; deepest block feeds the coarsest stage), then two
   Conv3x3 + GN + ReLU. GroupNorm instead of TransUNet's BatchNorm: local fine-tuning runs at batch 1-2 clips;
3. Conv3x3 to ``1 + len(classes)`` logits (class 0 is background), resized to the input size if it is not a multiple
   of the patch size.

Outputs:
- ``forward(feats)`` -> logits ``[B, T, K, H, W]`` with K = 1 + len(classes), at the clip's input resolution;
- ``predict(logits)`` -> probabilities ``[B, T, K, H, W]`` (softmax over K);
- ``frame_masks(probs[K, H, W])`` -> ``[(class_name, score, mask bool[H, W]), ...]`` for each foreground class whose
  argmax region is non-empty; ``score`` is that class's mean probability over its region.

Loss (reference §5.2): ``0.5 * CE + 0.5 * soft Dice`` on softmax probabilities, averaged over all K classes including
background, per class ``1 - (2 sum(p g) + 1e-5) / (sum(p^2) + sum(g^2) + 1e-5)``. Targets are ``long [B, T, H, W]``
class indices (0 = background); ``-100`` marks unlabelled pixels or whole unlabelled frames, ignored by both terms.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core_model.heads.base import TaskHead, check_classes
from core_model.heads.features import BackboneFeatures, evenly_spaced_blocks

__all__ = ["SegmentationHead", "default_decoder_channels", "segmentation_loss"]

IGNORE_INDEX = -100
DICE_SMOOTH = 1e-5


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class _ConvGNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(_groups(cout), cout),
            nn.ReLU(inplace=True),
        )


class _SkipProjection(nn.Module):
    """Pre-norm block tokens -> per-frame maps with ``out_ch`` channels (LayerNorm + 1x1 conv)."""

    def __init__(self, embed_dim: int, out_ch: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.proj = nn.Conv2d(embed_dim, out_ch, kernel_size=1)

    def forward(self, tokens: torch.Tensor, feats: BackboneFeatures) -> torch.Tensor:
        return self.proj(feats.maps(self.norm(tokens)))  # [B*T, out_ch, Hp, Wp]


class _UpStage(nn.Module):
    def __init__(self, cin: int, skip_ch: int, cout: int):
        super().__init__()
        self.conv1 = _ConvGNReLU(cin + skip_ch, cout)
        self.conv2 = _ConvGNReLU(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if skip is not None:
            skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class SegmentationHead(TaskHead):
    task = "segmentation"

    def __init__(
        self,
        embed_dim: int,
        classes: list[str],
        skip_blocks: list[int],
        patch_size: int = 16,
        decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32),
    ):
        super().__init__()
        self.classes = check_classes(classes, "SegmentationHead")
        if "background" in self.classes:
            raise ValueError(
                f"SegmentationHead classes {self.classes}: list only foreground classes, background is class 0"
            )
        self.embed_dim = int(embed_dim)
        self.patch_size = int(patch_size)
        n_up = int(round(math.log2(self.patch_size)))
        if 2**n_up != self.patch_size:
            raise ValueError(f"SegmentationHead needs a power-of-two patch size, got {patch_size}")
        channels = [int(c) for c in decoder_channels]
        if len(channels) != n_up:
            raise ValueError(
                f"decoder_channels needs {n_up} entries for patch size {patch_size}, got {channels}"
            )
        self.skip_blocks = sorted(int(b) for b in skip_blocks)
        if len(self.skip_blocks) > n_up:
            raise ValueError(
                f"at most {n_up} skip blocks for patch size {patch_size}, got {self.skip_blocks}"
            )
        self.decoder_channels = channels
        self.stem = _ConvGNReLU(self.embed_dim, channels[0])
        # the deepest skip feeds the coarsest stage
        skips_by_stage = list(reversed(self.skip_blocks))
        self.skip_proj = nn.ModuleDict()
        stages = []
        cin = channels[0]
        for i, cout in enumerate(channels):
            skip_ch = 0
            if i < len(skips_by_stage):
                skip_ch = cout
                self.skip_proj[str(skips_by_stage[i])] = _SkipProjection(self.embed_dim, skip_ch)
            stages.append(_UpStage(cin, skip_ch, cout))
            cin = cout
        self._stage_skip = [str(b) for b in skips_by_stage] + [None] * (n_up - len(skips_by_stage))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(cin, self.num_classes, kernel_size=3, padding=1)

    @property
    def num_classes(self) -> int:
        """Output channels including background (class 0)."""
        return 1 + len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return ["background", *self.classes]

    def required_blocks(self, depth: int) -> list[int]:
        bad = [b for b in self.skip_blocks if not 0 <= b < depth]
        if bad:
            raise ValueError(f"SegmentationHead skip blocks {bad} do not exist in a {depth}-block backbone")
        return list(self.skip_blocks)

    def forward(self, feats: BackboneFeatures) -> torch.Tensor:
        x = self.stem(feats.maps())  # [B*T, C0, Hp, Wp]
        for stage, key in zip(self.stages, self._stage_skip):
            skip = None
            if key is not None:
                if int(key) not in feats.intermediates:
                    raise KeyError(
                        f"SegmentationHead needs block {key}'s tokens; run it through EndoFMTaskModel"
                    )
                skip = self.skip_proj[key](feats.intermediates[int(key)], feats)
            x = stage(x, skip)
        logits = self.classifier(x)  # [B*T, K, Hp*p, Wp*p]
        if tuple(logits.shape[-2:]) != tuple(feats.image_size):
            logits = F.interpolate(logits, size=feats.image_size, mode="bilinear", align_corners=False)
        return logits.unflatten(0, (feats.batch_size, feats.num_frames))  # [B, T, K, H, W]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return segmentation_loss(logits, targets)

    @torch.no_grad()
    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=2)

    def frame_masks(self, probs: torch.Tensor | np.ndarray) -> list[tuple[str, float, np.ndarray]]:
        """One frame's probabilities ``[K, H, W]`` -> ``[(class, score, bool mask [H, W])]`` per non-empty class."""
        p = torch.as_tensor(probs).float()
        winner = p.argmax(dim=0)
        out = []
        for k, name in enumerate(self.classes, start=1):
            region = winner == k
            if bool(region.any()):
                score = float(p[k][region].mean())
                out.append((name, score, region.cpu().numpy()))
        return out

    def config(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "skip_blocks": list(self.skip_blocks),
            "decoder_channels": list(self.decoder_channels),
        }

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], embed_dim: int, patch_size: int = 16, depth: int = 12
    ) -> SegmentationHead:
        n_up = int(round(math.log2(patch_size)))
        skips = cfg.get("skip_blocks")
        if skips is None:  # default: 3 blocks spread over the depth (the final output is the 4th input)
            skips = evenly_spaced_blocks(depth, min(n_up, 3) + 1)[:-1]
        channels = cfg.get("decoder_channels") or default_decoder_channels(embed_dim, n_up)
        return cls(
            embed_dim, list(cfg.get("classes", [])), skips, patch_size=patch_size, decoder_channels=channels
        )


def default_decoder_channels(embed_dim: int, stages: int = 4) -> list[int]:
    """TransUNet's (256, 128, 64, 16) for the 768-wide ViT-B, scaled with the width for smaller backbones
    (384 -> 128, 64, 32, 16; 192 -> 64, 32, 16, 16) so the decoder never costs more than the backbone on a CPU."""
    c0 = max(32, (embed_dim // 3) // 16 * 16)
    return [max(16, c0 // 2**i) for i in range(stages - 1)] + [16]


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """``0.5 * CE + 0.5 * soft Dice`` (all classes incl. background). logits ``[B, T, K, H, W]``, targets
    ``long [B, T, H, W]`` (``-100`` ignored)."""
    if logits.dim() != 5:
        raise ValueError(f"segmentation logits must be [B, T, K, H, W], got {tuple(logits.shape)}")
    b, t, k, h, w = logits.shape
    targets = targets.to(logits.device, torch.long)
    if tuple(targets.shape) != (b, t, h, w):
        raise ValueError(
            f"segmentation targets must be [B, T, H, W]={(b, t, h, w)}, got {tuple(targets.shape)}"
        )
    logits = logits.float().flatten(0, 1)  # [B*T, K, H, W]
    targets = targets.flatten(0, 1)  # [B*T, H, W]
    valid = targets != IGNORE_INDEX
    if not bool(valid.any()):
        zero = logits.sum() * 0.0
        return {"loss": zero, "loss_ce": zero, "loss_dice": zero}
    ce = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    probs = torch.softmax(logits, dim=1)  # [B*T, K, H, W]
    onehot = F.one_hot(targets.clamp(min=0), k).permute(0, 3, 1, 2).float()  # [B*T, K, H, W]
    m = valid.unsqueeze(1).float()
    probs, onehot = probs * m, onehot * m
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = (probs * probs).sum(dim=(0, 2, 3)) + (onehot * onehot).sum(dim=(0, 2, 3))
    dice = (1.0 - (2.0 * inter + DICE_SMOOTH) / (denom + DICE_SMOOTH)).mean()
    return {"loss": 0.5 * ce + 0.5 * dice, "loss_ce": ce, "loss_dice": dice}
