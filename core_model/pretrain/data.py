"""Pretraining data: the clip list, decoding in DataLoader workers, failing videos skipped.

Input (``data.path``) is either

- a CSV list in the official format (reference §4.1, ``data/pretrain/train.csv``): one clip per row, ``<path>,-1``
  (exactly two comma-separated fields; the label is unused). Relative paths are taken relative to the CSV's folder;
- or a folder, scanned recursively for video files (``VIDEO_EXTENSIONS``), in sorted order.

``PretrainClips[(epoch, index)]`` decodes the frames the views need with ``core_model.video.VideoReader`` (only the
union of the view indices), draws the view parameters from a generator seeded by (seed, epoch, index) — so a
clip's views do not depend on the worker count or on resuming — and returns the list of augmented views
``[3, T_v, S_v, S_v]``. A video that fails to decode is logged (once per worker) and replaced by another clip drawn
from the same generator, as the official loader does; after ``max_retries`` failures in a row the run stops with a
message naming the last file and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from core_model.pretrain.augment import augment_views, draw_view_params
from core_model.pretrain.config import AugmentConfig, ViewsConfig
from core_model.pretrain.views import sample_view_indices

log = logging.getLogger(__name__)

__all__ = ["VIDEO_EXTENSIONS", "ClipListError", "EpochTaggedSampler", "PretrainClips", "read_clip_list"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg")


class ClipListError(ValueError):
    """The clip list cannot be used; the message names the file (and line) and the reason."""


def read_clip_list(path: str | Path) -> list[Path]:
    """Clip paths from an official CSV list or a folder of videos."""
    p = Path(path)
    if not str(path):
        raise ClipListError("data.path is empty: give a CSV list (path,-1 per row) or a folder of videos")
    if p.is_dir():
        clips = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not clips:
            raise ClipListError(f"{p}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found in this folder")
        return clips
    if not p.is_file():
        raise ClipListError(f"{p}: no such file or folder")
    clips = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rsplit(",", 1)
        if len(fields) != 2 or not fields[0].strip():
            raise ClipListError(f"{p}:{lineno}: expected '<path>,<label>' (e.g. clip.mp4,-1), got {line!r}")
        clip = Path(fields[0].strip())
        clips.append(clip if clip.is_absolute() else p.parent / clip)
    if not clips:
        raise ClipListError(f"{p}: the clip list is empty")
    return clips


class EpochTaggedSampler(Sampler[tuple[int, int]]):
    """Wraps an index sampler and yields ``(epoch, index)`` keys, so workers know the epoch without shared state."""

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)  # DistributedSampler: a different shuffle every epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self.sampler:
            yield epoch, int(i)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class PretrainClips(Dataset):
    def __init__(
        self,
        clips: list[Path],
        views: ViewsConfig,
        augment: AugmentConfig,
        seed: int = 0,
        max_retries: int = 10,
    ) -> None:
        self.clips = list(clips)
        self.views, self.augment = views, augment
        self.seed, self.max_retries = seed, max_retries
        self.sizes = [views.global_size] * 2 + [views.local_size] * len(views.local_frames)
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int] | int) -> list[torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        last_error: Exception | None = None
        for _ in range(self.max_retries + 1):
            path = self.clips[index]
            try:
                return self.load(path, rng)
            except Exception as exc:  # a bad video is never fatal: log it and take another clip
                last_error = exc
                if path not in self._reported:
                    self._reported.add(path)
                    log.warning("skipping clip %s: %s", path, exc)
                index = int(rng.integers(0, len(self.clips)))
        raise RuntimeError(
            f"{self.max_retries + 1} clips in a row failed to decode; last: {path}: {last_error}"
        ) from last_error

    def load(self, path: Path, rng: np.random.Generator) -> list[torch.Tensor]:
        """Decode and augment one clip -> list of views ``[3, T_v, S_v, S_v]`` (float, normalised)."""
        from core_model.video import VideoReader

        with VideoReader(path) as reader:
            n = len(reader)
            if n < 1:
                raise ValueError("video has no frames")
            per_view = sample_view_indices(n, reader.meta.fps, self.views, rng)
            unique, inverse = np.unique(np.concatenate(per_view), return_inverse=True)
            frames = reader.get_batch([int(i) for i in unique])  # frames: [K, H, W, 3] uint8
        frames_t = torch.from_numpy(np.ascontiguousarray(frames))
        height, width = frames_t.shape[1], frames_t.shape[2]
        positions = [
            torch.from_numpy(p) for p in np.split(inverse, np.cumsum([len(v) for v in per_view])[:-1])
        ]
        kinds = [0, 1] + [2] * len(self.views.local_frames)
        params = [draw_view_params(height, width, k, self.augment, rng) for k in kinds]
        return augment_views(frames_t, positions, self.sizes, params, self.augment)
