"""Thumbnail strips: a row of small frames sampled evenly through a video, cached as a PNG."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from endoreview.media.frameserver import FrameSource
from endoreview.media.guard import check_off_gui_thread

log = logging.getLogger(__name__)


def thumbnail_dir() -> Path:
    from endoreview.paths import cache_dir

    d = cache_dir() / "thumbnails"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_strip_path(source: Path | str, n: int, height: int) -> Path:
    src = Path(source).resolve()
    try:
        st = src.stat()
        stamp = f"{st.st_size}-{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    digest = hashlib.sha1(f"{src}|{stamp}|{n}|{height}".encode()).hexdigest()[:16]
    return thumbnail_dir() / f"{src.stem[:40]}-{digest}.png"


def strip_indices(frame_count: int, n: int) -> list[int]:
    """``n`` frame indices evenly spread over the video (centres of ``n`` equal parts)."""
    if frame_count <= 0:
        return []
    n = max(1, min(n, frame_count))
    return sorted({min(frame_count - 1, int((k + 0.5) * frame_count / n)) for k in range(n)})


def make_strip(
    source: FrameSource,
    frame_count: int,
    n: int = 8,
    height: int = 72,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """RGB uint8 ``[height, n * w, 3]``: ``n`` frames sampled evenly, each resized to ``height`` pixels high."""
    import cv2

    check_off_gui_thread("thumbnail", f"strip of {n}")
    tiles = []
    for i in strip_indices(frame_count, n):
        if should_cancel is not None and should_cancel():
            break
        frame = source[i]
        h, w = frame.shape[:2]
        tw = max(1, int(round(w * height / h)))
        tiles.append(cv2.resize(frame, (tw, height), interpolation=cv2.INTER_AREA))
    if not tiles:
        raise ValueError("no frames to make a thumbnail strip from")
    return np.concatenate(tiles, axis=1)


def load_or_make_strip(
    video: Path | str,
    open_source: Callable[[], FrameSource],
    frame_count: int,
    n: int = 8,
    height: int = 72,
) -> tuple[Path, np.ndarray]:
    """The cached strip for ``video`` (made from ``open_source()`` on first use). Off the GUI thread only."""
    import cv2

    check_off_gui_thread("thumbnail", str(video))
    path = default_strip_path(video, n, height)
    if path.is_file():
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None:
            from endoreview.paths import mark_used

            mark_used(path)
            return path, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    src = open_source()
    try:
        strip = make_strip(src, frame_count, n=n, height=height)
    finally:
        src.close()
    from core_model.atomic import atomic_write_bytes

    ok, png = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, png.tobytes())
    return path, strip
