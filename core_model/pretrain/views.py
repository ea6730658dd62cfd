"""Which frames each view of a clip uses (reference §3.2, ``datasets/decoder.py`` with temporal_aug and rand_fr).

A clip of ``n_frames`` at ``fps`` is first reduced to a decoded window of
``sampling_rate * num_frames / target_fps * fps`` frames (256 at 30 fps) starting uniformly at random; L is the
window length (the whole clip for the official 150-frame clips). Inside the window every view takes
``linspace(start, end, k)`` clamped to [0, L-1] and truncated to integers:

- global 1: k = 8 over [0, L-5]; global 2: k = 16 over [5, L] (same interval, different frame rates);
- local v: k = 2,2,4,4,8,8,16,16 over [s, s+w], w = L // 8, s drawn independently per view from [0, L-w-1].

``sample_view_indices`` returns absolute frame indices into the video, one int64 array per view.
"""

from __future__ import annotations

import numpy as np

from core_model.pretrain.config import ViewsConfig

__all__ = ["decode_window", "sample_view_indices"]


def decode_window(n_frames: int, fps: float, cfg: ViewsConfig, rng: np.random.Generator) -> tuple[int, int]:
    """``(start, length)`` of the decoded window inside a video of ``n_frames`` frames."""
    if n_frames < 1:
        raise ValueError("video has no frames")
    fps = fps if fps and fps > 0 else cfg.target_fps
    window = int(round(cfg.sampling_rate * cfg.num_frames / cfg.target_fps * fps))
    window = max(window, 1)
    if n_frames <= window:
        return 0, n_frames
    start = int(rng.integers(0, n_frames - window + 1))
    return start, window


def _linspace(start: float, end: float, k: int, length: int) -> np.ndarray:
    idx = np.linspace(start, end, k)
    return np.clip(idx, 0, length - 1).astype(np.int64)  # truncation toward zero, as torch .long() does


def sample_view_indices(
    n_frames: int, fps: float, cfg: ViewsConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Frame indices for the 2 global and the local views of one clip, in view order."""
    start, length = decode_window(n_frames, fps, cfg, rng)
    g1k, g2k = cfg.global_frames
    off = cfg.global_offset
    views = [
        _linspace(0, length - off, g1k, length),
        _linspace(off, length, g2k, length),
    ]
    w = length // cfg.local_window_div
    for k in cfg.local_frames:
        s = int(rng.integers(0, max(length - w - 1, 0) + 1))
        views.append(_linspace(s, s + w, k, length))
    return [v + start for v in views]
