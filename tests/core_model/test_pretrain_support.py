"""Shared helpers for the pretraining tests (no tests here): tiny videos and a tiny config."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_OVERRIDES = [
    "model.arch=endofm_tiny",
    "model.init_checkpoint=scratch",
    "model.overrides={embed_dim: 48, depth: 1, num_heads: 3, img_size: 32, num_frames: 2}",
    "head.out_dim=64",
    "head.hidden_dim=32",
    "head.bottleneck_dim=16",
    "views.global_size=32",
    "views.local_size=16",
    "views.global_frames=[2, 4]",
    "views.local_frames=[1, 1, 1, 1, 2, 2, 2, 2]",
    "data.batch_size_per_gpu=2",
    "data.num_workers=0",
    "optim.epochs=2",
    "optim.warmup_epochs=1",
    "optim.lr=0.05",
    "run.saveckp_freq=1",
    "run.num_threads=1",  # tiny tensors: one thread avoids OpenMP overhead on a shared 2-core machine
]


def write_tiny_videos(folder: Path, n: int = 4, frames: int = 12, seed: int = 0) -> list[Path]:
    """``n`` small H.264/MPEG-4 videos (48x64) with smooth random content, distinct per video."""
    from core_model.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64]
    paths = []
    for k in range(n):
        base = rng.uniform(40, 200, size=3)
        fx, fy = rng.uniform(0.05, 0.3, size=2)
        vid = np.empty((frames, 48, 64, 3), np.uint8)
        for t in range(frames):
            wave = 50 * np.sin(fx * xx + fy * yy + 0.3 * t)
            vid[t] = np.clip(base[None, None, :] + wave[..., None], 0, 255).astype(np.uint8)
        paths.append(write_video(folder / f"clip{k}.mp4", vid, fps=30))
    return paths


def tiny_config(data_path: Path, *extra: str):
    from core_model.pretrain import load_config

    return load_config(None, [*TINY_OVERRIDES, f"data.path={data_path}", *extra])
