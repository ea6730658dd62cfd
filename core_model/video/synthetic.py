"""Fast synthetic long videos for scale tests: a moving texture with the frame index burned in.

The phantom renderer (``core_model.phantom``) draws realistic colonoscopy at a few frames per second; a 30-minute 1080p
procedure (54,000 frames) needs something that costs nothing per frame. Here each frame is a window sliding over one
precomputed smooth colour texture (so the encoder sees real motion, not a still), with the frame index written as a
block code in the top-left corner (``read_counter`` reads it back, robust to compression). Encoded with
``core_model.video.writer.write_video`` (H.264 when available).

    write_texture_video("long.mp4", num_frames=1800, size=(1080, 1920), fps=30, gop=250)
    read_counter(VideoReader("long.mp4")[123]) == 123
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core_model.atomic import atomic_write

__all__ = ["COUNTER_BITS", "read_counter", "texture_frames", "write_long_video", "write_texture_video"]

COUNTER_BITS = 20  # up to 1,048,575 frames (9.7 hours at 30 fps)
_COLS = 5


def _block(height: int) -> int:
    return max(4, height // 24)


def stamp_counter(frame: np.ndarray, index: int) -> None:
    """Write ``index`` as a 4x5 grid of dark/light blocks in the top-left corner of ``frame`` [H, W, 3] (in place)."""
    b = _block(frame.shape[0])
    for k in range(COUNTER_BITS):
        r, c = divmod(k, _COLS)
        frame[r * b : (r + 1) * b, c * b : (c + 1) * b] = 235 if (index >> k) & 1 else 16


def read_counter(frame: np.ndarray) -> int:
    """The frame index burned in by ``stamp_counter`` (reads the centre of each block)."""
    b = _block(frame.shape[0])
    q = max(1, b // 4)
    v = 0
    for k in range(COUNTER_BITS):
        r, c = divmod(k, _COLS)
        if frame[r * b + q : (r + 1) * b - q, c * b + q : (c + 1) * b - q].mean() > 128:
            v |= 1 << k
    return v


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth pinkish texture [height, width, 3] uint8 (bilinear-upsampled noise at two scales)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), dtype=np.float32)
    for cells, weight in ((12, 0.7), (48, 0.3)):
        small = rng.random((cells, max(2, cells * width // height), 3), dtype=np.float32)
        out += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    base = np.array([190.0, 95.0, 85.0], dtype=np.float32)  # mucosa-like red/pink
    img = base + (out - 0.5) * np.array([90.0, 70.0, 60.0], dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def texture_frames(
    num_frames: int, size: tuple[int, int] = (1080, 1920), seed: int = 0
) -> Iterator[np.ndarray]:
    """``num_frames`` RGB uint8 frames [H, W, 3] (``size`` = (H, W)): a window drifting over a texture twice the
    frame's size on a slow Lissajous path, with the frame index burned in. Each frame is a fresh array."""
    h, w = int(size[0]), int(size[1])
    tex = _texture(2 * h, 2 * w, seed)
    for i in range(int(num_frames)):
        t = i / 30.0
        y = int((h / 2) * (1 + np.sin(0.21 * t)))  # within [0, h]
        x = int((w / 2) * (1 + np.sin(0.13 * t + 1.0)))
        frame = tex[y : y + h, x : x + w].copy()
        stamp_counter(frame, i)
        yield frame


def write_texture_video(
    path: str | os.PathLike,
    num_frames: int,
    size: tuple[int, int] = (1080, 1920),
    fps: float = 30.0,
    gop: int = 250,
    seed: int = 0,
    crf: float = 28,
    preset: str = "ultrafast",
) -> Path:
    """Encode ``texture_frames`` to ``path`` (H.264 ``preset``/``crf`` when libx264 is present, keyframe every
    ``gop`` frames, no B-frames); returns the path. About 100 frames/s at 1080p on one core with ``ultrafast``."""
    from core_model.video.writer import write_video

    return write_video(
        path, texture_frames(num_frames, size, seed), fps=fps, gop=gop, crf=crf, bframes=0, preset=preset
    )


def write_long_video(
    path: str | os.PathLike,
    num_frames: int,
    size: tuple[int, int] = (1080, 1920),
    fps: float = 30.0,
    gop: int = 250,
    segment_frames: int = 1800,
    seed: int = 0,
) -> Path:
    """A long H.264 video in seconds, not hours: one ``segment_frames`` segment is encoded (``write_texture_video``)
    and its packets are copied end to end with shifted timestamps until ``num_frames`` (no re-encoding; every copy
    starts on a keyframe). The burned-in counter therefore reads ``index % segment_frames``. Written to a hidden
    temporary name and renamed into place (``core_model.atomic``)."""
    import av

    path = Path(path)
    seg_n = min(int(segment_frames), int(num_frames))
    seg = path.with_name(f".{path.stem}.segment{path.suffix}")
    write_texture_video(seg, seg_n, size=size, fps=fps, gop=gop, seed=seed)

    def copy_segments(tmp: Path) -> None:
        with av.open(str(seg)) as src:
            ist = src.streams.video[0]
            packets = [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in src.demux(ist) if p.size]
            time_base = ist.time_base
            with av.open(str(tmp), mode="w") as dst:
                ost = dst.add_stream_from_template(ist)
                step = (packets[-1][1] - packets[0][1]) // max(1, seg_n - 1)  # pts per frame
                written = 0
                copy = 0
                while written < num_frames:
                    shift = copy * seg_n * step
                    for data, pts, dts, key in packets:
                        if written >= num_frames:
                            break
                        pkt = av.Packet(data)
                        pkt.pts, pkt.dts = pts + shift, dts + shift
                        pkt.is_keyframe = key
                        pkt.time_base = time_base
                        pkt.stream = ost
                        dst.mux(pkt)
                        written += 1
                    copy += 1

    try:
        atomic_write(path, copy_segments, keep_suffix=True)
    finally:
        seg.unlink(missing_ok=True)
    return path
