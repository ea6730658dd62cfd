"""Streaming clip batches for the ``Predictor``: memory bounded by the batch, not by the video.

A background thread (``ClipStream``) walks the clip plan batch by batch. For each batch it decodes only the frames
it does not hold yet, **one frame at a time in index order** (``VideoReader.iter_frames``: sequential decoding, one
seek per gap), resizes each frame to the model's input size the moment it is decoded (``resize_frames``), and keeps
only model-resolution uint8 frames (37 KB each at 112 px) for the clips still to come. Batches are handed over
through a queue of two, so at most: one full-resolution frame, the model-resolution frames of the current window,
and two normalised batches exist at once, whatever the video's length (measured: ``benchmarks/procedure_scale.py``).

Why decode at full resolution and resize here instead of asking the decoder to scale (swscale): on 1080p H.264 the
decoder's own bilinear/area scaling moved class probabilities of the demo model by up to 0.013 against the evaluation
transform (a different filter and chroma handling), while converting to RGB in the decoder and resizing with
torch's antialiased bilinear kernel on uint8 (the fast path torchvision uses) stays within 6e-4 (only the rounding to
uint8 of the resized frame differs) at ~4 ms a frame. ``preprocess_frames`` (float) remains the reference transform.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core_model.inference.planning import Clip, make_clip

__all__ = ["ClipBatch", "ClipStream", "normalise_frames", "resize_frames"]


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 ``[K, H, W, 3]`` (or one ``[H, W, 3]``) -> uint8 ``[K, S_h, S_w, 3]``: the whole frame resized
    (bilinear, antialiased, aspect not kept: the fine-tuning evaluation transform), rounded to uint8."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if tuple(arr.shape[1:3]) == tuple(size):
        return np.ascontiguousarray(arr)
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)  # [K, 3, H, W], channels-last memory
    y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy())  # [K, S_h, S_w, 3]


def normalise_frames(frames: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[..., S_h, S_w, 3]`` -> float32 ``[..., 3, S_h, S_w]``: /255, then (x - mean) / std per channel."""
    x = np.asarray(frames, dtype=np.float32)
    scale = np.float32(1.0 / 255.0) / np.asarray(std, dtype=np.float32)
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    x = x * scale - shift
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


@dataclass
class ClipBatch:
    clips: list[Clip]
    x: torch.Tensor  # [B, 3, T, S_h, S_w] float32 (CPU, pinned on CUDA machines)
    frame_hw: tuple[int, int]  # original frame size (H, W)
    next_start: int | None  # the first clip start of the next batch (None: this is the last batch)


class _Cancelled(Exception):
    pass


class ClipStream:
    """Decodes, resizes and normalises the batches of a clip plan in a background thread, one batch ahead.

    ``starts``: the plan's sorted clip starts (``plan_clip_starts``); ``num_frames`` / ``clip_len`` /
    ``frame_stride`` make each clip from its start. ``depth``: batches made ahead of the consumer. Iterate to get
    ``ClipBatch`` objects; ``close()`` stops the thread (safe to call twice). A decoding error is raised from the iteration, in the consumer's thread.
    """

    def __init__(
        self,
        reader,
        starts: np.ndarray,
        *,
        num_frames: int,
        clip_len: int,
        frame_stride: int,
        batch_size: int,
        img_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        pin: bool = False,
        depth: int = 2,
    ):
        self._reader = reader
        self._starts = np.asarray(starts, dtype=np.int64)
        self._n, self._t, self._s = int(num_frames), int(clip_len), int(frame_stride)
        self._bs = int(batch_size)
        self._size = (int(img_size[0]), int(img_size[1]))
        self._mean, self._std = tuple(mean), tuple(std)
        self._pin = pin
        self.frames_decoded = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endofm-prefetch", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return -(-len(self._starts) // self._bs)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def _run(self) -> None:
        window: dict[int, np.ndarray] = {}  # frame -> uint8 [S_h, S_w, 3], for clips still to come
        frame_hw: tuple[int, int] | None = None
        starts, bs = self._starts, self._bs
        try:
            for b0 in range(0, len(starts), bs):
                if self._stop.is_set():
                    return
                clips = [make_clip(a, self._n, self._t, self._s) for a in starts[b0 : b0 + bs].tolist()]
                needed = sorted({i for c in clips for i in c.indices} - window.keys())
                for i, frame in self._reader.iter_frames(needed):
                    frame_hw = (int(frame.shape[0]), int(frame.shape[1]))
                    window[i] = resize_frames(frame, self._size)[0]
                    self.frames_decoded += 1
                    if self._stop.is_set():
                        return
                if frame_hw is None:  # every frame came from the window (cannot happen on the first batch)
                    raise RuntimeError("no frame decoded for the first batch")
                # x: [B, T, S_h, S_w, 3] uint8 -> [B, 3, T, S_h, S_w] float32
                u8 = np.stack([np.stack([window[i] for i in c.indices]) for c in clips])
                x = torch.from_numpy(normalise_frames(u8, self._mean, self._std)).transpose(1, 2).contiguous()
                if self._pin:
                    x = x.pin_memory()
                nxt = int(starts[b0 + bs]) if b0 + bs < len(starts) else None
                self._put(ClipBatch(clips, x, frame_hw, nxt))
                if nxt is None:
                    window.clear()
                else:
                    for i in [i for i in window if i < nxt]:
                        del window[i]
            self._put(None)
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the consumer, which turns a VideoError into an error event
            try:
                self._put(exc)
            except _Cancelled:
                return

    def __iter__(self) -> Iterator[ClipBatch]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
