"""Which clips the ``Predictor`` runs over a video, and which clips each frame's result comes from.

Vocabulary (all in frames of the original video, 0-based):

- ``clip_len`` T: frames per clip (the model's ``num_frames``).
- ``frame_stride`` s: the gap between two consecutive frames *inside* a clip; a clip starting at frame a samples
  ``a, a+s, ..., a+(T-1)s`` and **spans** ``span = (T-1)s + 1`` frames ``[a, a+span)``.
- ``clip_stride`` c: the gap between the **first frames of two consecutive clips** (c < span: clips overlap).

The plan (``plan_clips``):

1. Regular grid (whole video): clips start at ``0, c, 2c, ...`` while the span fits; one more clip is aligned to the
   end (start ``n - span``) if the grid did not reach the last frame. A video shorter than one span gets a single
   clip at 0 whose samples past the end repeat the last frame.
2. Fill: every target frame must be *sampled* by some clip when the model has a dense head (masks and boxes are per
   sampled frame), or at least *covered* by a clip's span for a classification-only model. A target frame that is
   not (possible when ``s > 1``, ``c > span`` or with a ``frames`` subset) gets an extra clip placed so that the
   frame sits as close to the clip's centre as the video allows.
3. ``frames`` subset: only step 2 runs, for the requested frames (a demo on a few frames costs a few clips).

Results per frame (``FrameSources``): class probabilities of frame i = the **mean of the clip-level probabilities of
every planned clip whose span contains i**; masks = mean of the per-pixel probabilities of every clip that samples
i; boxes = from the clip that samples i closest to its centre (ties: the earlier clip).
Clips are returned sorted by start, so once every clip starting at or before frame i has run, frame i is final.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["Clip", "make_clip", "plan_clip_starts", "plan_clips"]


@dataclass(frozen=True)
class Clip:
    start: int  # first frame of the span
    indices: tuple[int, ...]  # the T frame indices fed to the model (clamped to the last frame)
    span_end: int  # exclusive end of the frames this clip covers (<= video length)

    def covers(self, frame: int) -> bool:
        return self.start <= frame < self.span_end

    def offset_from_centre(self, frame: int) -> float:
        """|position of ``frame`` in the clip - centre position|, in clip positions (inf if not sampled)."""
        try:
            pos = self.indices.index(frame)
        except ValueError:
            return float("inf")
        return abs(pos - (len(self.indices) - 1) / 2)


def _make_clip(start: int, n: int, clip_len: int, frame_stride: int) -> Clip:
    idx = tuple(min(start + j * frame_stride, n - 1) for j in range(clip_len))
    return Clip(start=start, indices=idx, span_end=min(start + (clip_len - 1) * frame_stride + 1, n))


def _clip_around(frame: int, n: int, clip_len: int, frame_stride: int) -> Clip:
    """A clip that samples ``frame`` at the position nearest the centre that keeps the span inside the video."""
    span = (clip_len - 1) * frame_stride + 1
    centre = (clip_len - 1) // 2
    hi = min(clip_len - 1, frame // frame_stride)  # position j: start = frame - j*s >= 0
    lo = max(0, -(-(frame + span - n) // frame_stride))  # start + span <= n
    j = min(max(centre, lo), hi) if lo <= hi else hi
    return _make_clip(frame - j * frame_stride, n, clip_len, frame_stride)


def make_clip(start: int, num_frames: int, clip_len: int, frame_stride: int) -> Clip:
    """The clip starting at ``start`` (what a plan's start stands for)."""
    return _make_clip(int(start), int(num_frames), int(clip_len), int(frame_stride))


def plan_clips(
    num_frames: int,
    clip_len: int,
    frame_stride: int = 1,
    clip_stride: int | None = None,
    frames: Iterable[int] | None = None,
    dense: bool = True,
) -> list[Clip]:
    """The clips to run over a video of ``num_frames`` frames (see the module docstring for the rules).

    ``clip_stride`` defaults to ``clip_len * frame_stride // 2`` (half-overlapping clips). ``frames`` restricts the
    work to those frames (out-of-range indices raise ``ValueError``). ``dense=False`` (a classification-only model)
    only needs every target frame *covered* by a clip's span, not sampled.
    """
    starts = plan_clip_starts(num_frames, clip_len, frame_stride, clip_stride, frames, dense)
    return [_make_clip(int(a), int(num_frames), int(clip_len), int(frame_stride)) for a in starts]


def plan_clip_starts(
    num_frames: int,
    clip_len: int,
    frame_stride: int = 1,
    clip_stride: int | None = None,
    frames: Iterable[int] | None = None,
    dense: bool = True,
) -> np.ndarray:
    """``plan_clips`` as the sorted clip starts (int64 ``[C]``; a start defines its clip, ``make_clip``): 8 bytes a
    clip, so a 4-hour video's plan is a few megabytes and the ``Predictor`` makes each clip only when it runs it."""
    n, t, s = int(num_frames), int(clip_len), int(frame_stride)
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if t < 1 or s < 1:
        raise ValueError(f"clip_len and frame_stride must be >= 1, got {clip_len}, {frame_stride}")
    span = (t - 1) * s + 1
    c = int(clip_stride) if clip_stride is not None else max(1, (t * s) // 2)
    if c < 1:
        raise ValueError(f"clip_stride must be >= 1, got {clip_stride}")
    done = np.zeros(n, dtype=bool)  # frames served (sampled, or covered when not dense) by a planned clip

    def serve(start: int) -> None:
        if dense:
            done[np.minimum(start + np.arange(t) * s, n - 1)] = True
        else:
            done[start : min(start + span, n)] = True

    chosen: list[np.ndarray] = []
    if frames is None:
        last = max(0, n - span)
        grid = np.arange(0, last + 1, c, dtype=np.int64)
        if grid[-1] != last:
            grid = np.append(grid, last)
        chosen.append(grid)
        if dense:
            for j in range(t):
                done[np.minimum(grid + j * s, n - 1)] = True
        else:
            cover = np.zeros(n + 1, dtype=np.int64)  # +1 at each start, -1 at each span end
            np.add.at(cover, grid, 1)
            np.add.at(cover, np.minimum(grid + span, n), -1)
            done |= np.cumsum(cover[:n]) > 0
        todo = np.flatnonzero(~done)
    else:
        targets = np.unique(np.fromiter((int(f) for f in frames), dtype=np.int64))
        bad = targets[(targets < 0) | (targets >= n)]
        if bad.size:
            raise ValueError(f"frames {bad[:5].tolist()} are outside the video (0..{n - 1})")
        todo = targets
    extra: list[int] = []
    for f in todo.tolist():
        if done[f]:
            continue
        start = _clip_around(f, n, t, s).start
        extra.append(start)
        serve(start)
    chosen.append(np.asarray(extra, dtype=np.int64))
    return np.unique(np.concatenate(chosen))
