"""Tiny real video files for the service tests (generated, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def frames(n: int = 12, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A bright square moving over a reddish background; frames >= n//2 carry the square ("polyp")."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, h, w, 3), np.uint8)
    out[..., 0] = 120 + seed % 50
    out[..., 1] = 40
    out[..., 2] = 50
    out += rng.integers(0, 8, out.shape, dtype=np.uint8)
    for i in range(n // 2, n):
        x = 4 + i
        out[i, 10:26, x : x + 16] = 240
    return out


def make_video(path: Path, n: int = 12, seed: int = 0) -> Path:
    from core_model.video import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames(n, seed=seed), fps=25.0)


def make_image_folder(folder: Path, n: int = 6) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames(n, seed=7)):
        Image.fromarray(f).save(folder / f"{i + 1}.png")
    return folder
