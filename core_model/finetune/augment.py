"""Clip augmentation that keeps masks and boxes consistent with the frames.

Every random draw is made once per clip and applied to all its frames, to their masks (nearest neighbour) and to
their boxes (the same affine map), so a polyp's label always sits on the polyp. The steps:

1. train: random resized crop (area share ``scale``, aspect ``ratio``), or ``crop="scale_jitter"`` (PolypDiag: short
   side to U[256, 320] then a random square crop); evaluation resizes the whole frame, or with
   ``eval_crop="short_side_corner"`` takes the left/top square (PolypDiag's val crop, reference §4.2);
2. resize to ``size x size`` (square, aspect not kept - what CVC-12k and KUMC do, and what inference does);
3. horizontal / vertical flips with probabilities ``hflip`` / ``vflip``;
4. brightness / contrast / saturation jitter (frames only).

No rotation: a rotated box is no longer tight. Boxes that keep less than ``min_visible`` of their area after the
crop are dropped (with their labels and track ids). Output frames are float ``[3, T, S, S]`` in [0, 1]; normalise
with ``normalize`` afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100  # mask value for pixels/frames without a label (the heads' ignore index)


@dataclass(frozen=True)
class AugmentConfig:
    size: int = 112
    scale: tuple[float, float] = (0.6, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    min_visible: float = 0.3
    crop: str = "random_resized"  # or "scale_jitter": short side -> U[short_side], random size x size crop
    short_side: tuple[float, float] = (256, 320)  # scale_jitter range, in output pixels (PolypDiag: 256-320)
    eval_crop: str = (
        "resize"  # or "short_side_corner": short side -> size, crop at the left/top (PolypDiag val)
    )


@dataclass
class ClipTargets:
    """Per-frame targets of one clip. ``masks``: ``[T, H, W]`` int64 (0 background, k + 1 class k, ``IGNORE``
    unlabelled) or None; ``boxes[t]``: float ``[n, 4]``; ``box_labels[t]``: int64 ``[n]``; ``track_ids[t]``: int64
    ``[n]`` (-1 unknown)."""

    masks: torch.Tensor | None = None
    boxes: list[torch.Tensor] = field(default_factory=list)
    box_labels: list[torch.Tensor] = field(default_factory=list)
    track_ids: list[torch.Tensor] = field(default_factory=list)


def _crop_params(h: int, w: int, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params`` with a numpy generator -> (top, left, height, width); or, for
    ``scale_jitter``, the square region that a random ``size`` crop of the short-side-rescaled frame covers."""
    if cfg.crop == "scale_jitter":
        target = rng.uniform(*cfg.short_side)
        side = max(1, min(h, w, int(round(cfg.size * min(h, w) / target))))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        return top, left, side, side
    if cfg.crop != "random_resized":
        raise ValueError(f"unknown crop mode {cfg.crop!r} (random_resized | scale_jitter)")
    area = h * w
    log_ratio = (math.log(cfg.ratio[0]), math.log(cfg.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*cfg.scale)
        ar = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    return 0, 0, h, w


def _resize_frames(x: torch.Tensor, size: int) -> torch.Tensor:
    # x: [T, 3, h, w] float -> [T, 3, S, S]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _transform_boxes(
    targets: ClipTargets,
    top: int,
    left: int,
    ch: int,
    cw: int,
    size: int,
    hflip: bool,
    vflip: bool,
    min_vis: float,
) -> None:
    sx, sy = size / cw, size / ch
    for t in range(len(targets.boxes)):
        b = targets.boxes[t].to(torch.float64)
        if b.numel() == 0:
            targets.boxes[t] = b.reshape(0, 4).float()
            continue
        area0 = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
        c = b.clone()
        c[:, [0, 2]] = (c[:, [0, 2]] - left).clamp(0, cw)
        c[:, [1, 3]] = (c[:, [1, 3]] - top).clamp(0, ch)
        area1 = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
        keep = (area1 >= min_vis * area0.clamp(min=1e-9)) & (area1 > 0)
        c = c * torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        if hflip:
            c[:, [0, 2]] = size - c[:, [2, 0]]
        if vflip:
            c[:, [1, 3]] = size - c[:, [3, 1]]
        targets.boxes[t] = c[keep].float()
        if t < len(targets.box_labels):
            targets.box_labels[t] = targets.box_labels[t][keep]
        if t < len(targets.track_ids):
            targets.track_ids[t] = targets.track_ids[t][keep]


def _jitter(x: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    # x: [T, 3, S, S] in [0, 1]; one factor per clip, applied in a random order like torchvision's ColorJitter
    ops = []
    if cfg.brightness > 0:
        f = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
        ops.append(lambda y, f=f: y * f)
    if cfg.contrast > 0:
        f = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
        ops.append(
            lambda y, f=f: (y - y.mean(dim=(1, 2, 3), keepdim=True)) * f + y.mean(dim=(1, 2, 3), keepdim=True)
        )
    if cfg.saturation > 0:
        f = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)

        def sat(y: torch.Tensor, f: float = f) -> torch.Tensor:
            gray = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]).expand_as(y)
            return gray + (y - gray) * f

        ops.append(sat)
    for k in rng.permutation(len(ops)):
        x = ops[int(k)](x).clamp(0, 1)
    return x


def transform_clip(
    frames: np.ndarray,
    targets: ClipTargets | None,
    cfg: AugmentConfig,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, ClipTargets]:
    """Augment (``rng`` given) or just resize (``rng`` None) one clip.

    ``frames``: uint8 ``[T, H, W, 3]``; ``targets`` in frame pixels. Returns frames ``[3, T, S, S]`` float in
    [0, 1] and the targets in output pixels (masks ``[T, S, S]``)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3], got {frames.shape}")
    targets = targets if targets is not None else ClipTargets()
    t_, h, w, _ = frames.shape
    s = cfg.size
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]
    if rng is not None:
        top, left, ch, cw = _crop_params(h, w, cfg, rng)
        hflip = bool(rng.uniform() < cfg.hflip)
        vflip = bool(rng.uniform() < cfg.vflip)
    elif (
        cfg.eval_crop == "short_side_corner"
    ):  # PolypDiag val: spatial_idx 0 = left (landscape) / top (portrait)
        side = min(h, w)
        top, left, ch, cw, hflip, vflip = 0, 0, side, side, False, False
    else:
        top, left, ch, cw, hflip, vflip = 0, 0, h, w, False, False
    x = _resize_frames(x[:, :, top : top + ch, left : left + cw], s)
    masks = targets.masks
    if masks is not None:
        m = masks[:, top : top + ch, left : left + cw].unsqueeze(1).float()  # [T, 1, ch, cw]
        masks = F.interpolate(m, size=(s, s), mode="nearest").squeeze(1).long()
    out = ClipTargets(masks, list(targets.boxes), list(targets.box_labels), list(targets.track_ids))
    _transform_boxes(out, top, left, ch, cw, s, hflip, vflip, cfg.min_visible)
    flip_dims = [d for d, on in ((-1, hflip), (-2, vflip)) if on]
    if flip_dims:
        x = torch.flip(x, dims=flip_dims)
        if out.masks is not None:
            out.masks = torch.flip(out.masks, dims=flip_dims)
    if rng is not None:
        x = _jitter(x, cfg, rng)
    assert x.shape == (t_, 3, s, s)
    return x.permute(1, 0, 2, 3).contiguous(), out  # [3, T, S, S]


def normalize(clip: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``[3, T, H, W]`` or ``[B, 3, T, H, W]`` in [0, 1] -> normalised with per-channel mean/std."""
    shape = (3, 1, 1, 1) if clip.dim() == 4 else (1, 3, 1, 1, 1)
    m = torch.tensor(mean, dtype=clip.dtype, device=clip.device).view(shape)
    sd = torch.tensor(std, dtype=clip.dtype, device=clip.device).view(shape)
    return (clip - m) / sd
