"""``VideoMeta`` (what a reader knows about a video before decoding a frame) and shared helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class VideoMeta:
    """Metadata of an opened video.

    ``width``/``height`` are those of the frames the reader returns, i.e. after the display rotation is applied.
    ``rotation`` is the display rotation in degrees counter-clockwise (0, 90, 180 or 270) found in the file, as
    ffmpeg/PyAV report it; frames are already rotated. ``fps`` is the average rate (frame_count / duration for
    variable-frame-rate files); per-frame times are in ``VideoReader.timestamps``. ``backend`` names the decoder
    in use ("decord", "pyav" or "images").
    """

    path: Path
    frame_count: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    rotation: int = 0
    is_image_sequence: bool = False
    variable_frame_rate: bool = False
    backend: str = ""


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key putting ``2.tif`` before ``10.tif``: digit runs compare as numbers, the rest case-insensitively."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "")


def is_variable_rate(timestamps: np.ndarray, tolerance: float = 0.05) -> bool:
    """True when frame intervals differ from their median by more than ``tolerance`` (relative)."""
    if len(timestamps) < 3:
        return False
    d = np.diff(timestamps)
    med = float(np.median(d))
    if med <= 0:
        return True
    return bool(np.any(np.abs(d - med) > tolerance * med))
