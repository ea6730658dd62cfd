"""Video DINO augmentation (reference §3.3, ``datasets/transform.py`` ``VideoDataAugmentationDINO``), in torch.

Every frame of a view shares one set of random parameters. Parameters are drawn per view with a NumPy
``Generator`` (``draw_view_params``), then the pixel work is vectorised: all frames of all views of the same output
size are processed as one tensor with per-frame parameter vectors (``augment_views``). The functions run on any
device, so the same code can augment in DataLoader workers (default) or on the GPU.

Official behaviour (the defaults) and the switches that change it:

- random resized crop: area scale U(0.4,1) for globals, U(0.05,0.4) for locals, log-uniform aspect (3/4, 4/3),
  bicubic ``F.interpolate`` (align_corners=False, no antialias, no clamping). With ``official_quirks`` the 10 attempts
  run without an early break: each overwrites (h, w), the offsets only change when an attempt fits, so a last
  attempt that does not fit keeps an earlier attempt's offsets and is truncated at the border by slicing; with none
  fitting, a centre crop clamped to the ratio range. ``official_quirks: false`` stops at the first attempt that fits
  (torchvision's behaviour) and clamps pixel values to [0, 1] after resizing and jitter.
- horizontal flip p=0.5; with p=0.8 colour jitter in random order (brightness, contrast, saturation; no hue);
  grayscale p=0.2. ``grayscale_bgr_quirk`` (official) computes grey as 0.299*ch2 + 0.587*ch1 + 0.114*ch0 on RGB
  input, also inside contrast and saturation.
- Gaussian blur (global1 p=1.0, global2 p=0.1, local p=0.5, sigma U(0.1, 2.0)) and solarisation (global2 p=0.2) are
  no-ops in the official code; their random draws happen either way, ``blur_solarize: true`` makes them work.
- ImageNet normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core_model.pretrain.config import AugmentConfig

__all__ = ["ViewParams", "augment_views", "crop_params", "draw_view_params", "grayscale"]

_BRIGHTNESS, _CONTRAST, _SATURATION = 0, 1, 2


@dataclass(frozen=True)
class ViewParams:
    crop: tuple[int, int, int, int]  # i (top), j (left), h, w — h/w may overhang the frame (official quirk)
    flip: bool
    jitter: bool
    order: tuple[int, int, int]  # permutation of brightness/contrast/saturation
    brightness: float
    contrast: float
    saturation: float
    gray: bool
    blur: bool
    sigma: float
    solarize: bool


def crop_params(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
    official_quirks: bool = True,
) -> tuple[int, int, int, int]:
    """``(i, j, h, w)`` of a random resized crop; see the module docstring for the official quirk."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    found: tuple[int, int] | None = None
    h = w = 0
    for _ in range(10):
        target_area = rng.uniform(scale[0], scale[1]) * area
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(rng.integers(0, height - h + 1))
            j = int(rng.integers(0, width - w + 1))
            found = (i, j)
            if not official_quirks:
                return i, j, h, w
    if found is not None:  # official: offsets of the last fitting attempt, size of the last attempt
        return found[0], found[1], h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def draw_view_params(
    height: int, width: int, kind: int, cfg: AugmentConfig, rng: np.random.Generator
) -> ViewParams:
    """Random parameters of one view. ``kind``: 0 = global 1, 1 = global 2, 2 = local."""
    scale = cfg.global_scale if kind < 2 else cfg.local_scale
    crop = crop_params(
        height, width, (scale[0], scale[1]), (cfg.ratio[0], cfg.ratio[1]), rng, cfg.official_quirks
    )
    flip = bool(rng.random() < cfg.flip_p)
    jitter = bool(rng.random() < cfg.jitter_p)
    order = tuple(int(o) for o in rng.permutation(3))
    b = float(rng.uniform(max(0.0, 1 - cfg.brightness), 1 + cfg.brightness))
    c = float(rng.uniform(max(0.0, 1 - cfg.contrast), 1 + cfg.contrast))
    s = float(rng.uniform(max(0.0, 1 - cfg.saturation), 1 + cfg.saturation))
    gray = bool(rng.random() < cfg.grayscale_p)
    blur = bool(rng.random() < cfg.blur_p[kind])
    sigma = float(rng.uniform(cfg.blur_sigma[0], cfg.blur_sigma[1]))
    solarize = bool(rng.random() < cfg.solarize_p[kind])
    if not cfg.blur_solarize:  # official: the draws happen, the ops return their input
        blur = solarize = False
    return ViewParams(crop, flip, jitter, order, b, c, s, gray, blur, sigma, solarize)  # type: ignore[arg-type]


def grayscale(x: torch.Tensor, bgr_quirk: bool) -> torch.Tensor:
    """Grey level of ``x: [N, 3, H, W]`` -> ``[N, 1, H, W]`` (official channel order when ``bgr_quirk``)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if bgr_quirk:
        return 0.299 * b + 0.587 * g + 0.114 * r
    return 0.299 * r + 0.587 * g + 0.114 * b


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-frame sigma. ``x: [N, 3, H, W]``, ``sigma: [N]``; reflect padding."""
    n, c, h, w = x.shape
    radius = int(math.ceil(3 * float(sigma.max())))
    radius = max(1, min(radius, (min(h, w) - 1)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].to(x.dtype)) ** 2)  # k: [N, K]
    k = k / k.sum(dim=1, keepdim=True)
    k = k.repeat_interleave(c, dim=0)  # one kernel per (frame, channel): [N*C, K]
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)  # along W
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)  # along H
    return y.reshape(n, c, h, w)


def _per_frame(values: list[float] | list[bool], counts: list[int], device: torch.device) -> torch.Tensor:
    return torch.repeat_interleave(torch.tensor(values, device=device), torch.tensor(counts, device=device))


def _colour(x: torch.Tensor, params: list[ViewParams], counts: list[int], cfg: AugmentConfig) -> torch.Tensor:
    """Flip, colour jitter, grayscale, blur, solarise on ``x: [N, 3, S, S]`` (frames of several views)."""
    dev = x.device
    flip = _per_frame([p.flip for p in params], counts, dev)
    if bool(flip.any()):
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    jitter = _per_frame([p.jitter for p in params], counts, dev)
    if bool(jitter.any()):
        alphas = {
            _BRIGHTNESS: _per_frame([p.brightness for p in params], counts, dev),
            _CONTRAST: _per_frame([p.contrast for p in params], counts, dev),
            _SATURATION: _per_frame([p.saturation for p in params], counts, dev),
        }
        for slot in range(3):
            op_at_slot = _per_frame([p.order[slot] for p in params], counts, dev)
            for op, alpha in alphas.items():
                use = jitter & (op_at_slot == op)
                if not bool(use.any()):
                    continue
                a = torch.where(use, alpha, torch.ones_like(alpha)).to(x.dtype)[:, None, None, None]
                if op == _BRIGHTNESS:
                    x = x * a
                elif op == _CONTRAST:
                    mean = grayscale(x, cfg.grayscale_bgr_quirk).mean(dim=(1, 2, 3), keepdim=True)
                    x = x * a + mean * (1 - a)
                else:
                    x = x * a + grayscale(x, cfg.grayscale_bgr_quirk) * (1 - a)
        if not cfg.official_quirks:
            x = x.clamp(0, 1)
    gray = _per_frame([p.gray for p in params], counts, dev)
    if bool(gray.any()):
        g = grayscale(x, cfg.grayscale_bgr_quirk).expand_as(x)
        x = torch.where(gray[:, None, None, None], g, x)
    blur = _per_frame([p.blur for p in params], counts, dev)
    if bool(blur.any()):
        idx = blur.nonzero().squeeze(1)
        sigma = _per_frame([p.sigma for p in params], counts, dev)[idx]
        x = x.index_copy(0, idx, _gaussian_blur(x[idx], sigma))
    sol = _per_frame([p.solarize for p in params], counts, dev)
    if bool(sol.any()):
        x = torch.where(sol[:, None, None, None] & (x >= 128 / 255), 1 - x, x)
    return x


def augment_views(
    frames: torch.Tensor,
    view_positions: list[torch.Tensor],
    sizes: list[int],
    params: list[ViewParams],
    cfg: AugmentConfig,
) -> list[torch.Tensor]:
    """Build the augmented views of one clip.

    ``frames``: uint8 ``[K, H, W, 3]`` (the decoded frames); ``view_positions[v]``: indices into ``frames`` for view v;
    ``sizes[v]``: its output side; ``params[v]``: its random parameters. Returns one float tensor ``[3, T_v, S_v, S_v]``
    per view, normalised. Views with the same output size are colour-processed together as one tensor.
    """
    x = frames.permute(0, 3, 1, 2)  # x: [K, 3, H, W] uint8
    out: list[torch.Tensor | None] = [None] * len(params)
    mean = torch.tensor(cfg.mean, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=frames.device).view(1, 3, 1, 1)
    for size in sorted(set(sizes)):
        members = [v for v, s in enumerate(sizes) if s == size]
        crops = []
        for v in members:
            i, j, h, w = params[v].crop
            patch = x[view_positions[v], :, i : i + h, j : j + w].float().div_(255)
            crops.append(F.interpolate(patch, size=(size, size), mode="bicubic", align_corners=False))
        y = torch.cat(crops)  # y: [sum T_v, 3, S, S]
        if not cfg.official_quirks:
            y = y.clamp_(0, 1)
        counts = [len(view_positions[v]) for v in members]
        y = _colour(y, [params[v] for v in members], counts, cfg)
        y = (y - mean) / std
        for v, part in zip(members, torch.split(y, counts)):
            out[v] = part.permute(1, 0, 2, 3).contiguous()  # [3, T, S, S]
    return out  # type: ignore[return-value]
