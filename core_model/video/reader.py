"""``VideoReader``: frame-exact access to a video file or an image-sequence folder behind one interface.

    with VideoReader("case1.mp4") as r:
        r.meta.frame_count, r.meta.fps
        first = r[0]                      # np.uint8 [H, W, 3], RGB
        clip = r.get_batch([0, 8, 16])    # np.uint8 [3, H, W, 3], in the order asked
        for i, frame in r.iter_frames(range(0, 9000)): ...   # one frame at a time, in index order
        for frame in r: ...

Built so a cache or prefetcher can sit on top: ``get_batch`` sorts and de-duplicates the indices and decodes each
run once (a sorted run costs one seek), ``keyframe_indices()`` says where seeks are cheap, and ``timestamps`` maps
frame index -> seconds (variable frame rate handled; ``index_at_time`` is the inverse). A reader is used from one
thread at a time: make one per thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from core_model.video.backends import (
    DecordBackend,
    ImageSequenceBackend,
    PyAVBackend,
    image_codec,
    image_size,
    import_decord,
    list_image_sequence,
    rotate,
)
from core_model.video.errors import FrameIndexError, VideoError
from core_model.video.meta import VideoMeta, is_variable_rate
from core_model.video.probe import probe_file

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
DEFAULT_IMAGE_FPS = 30.0


def decord_available() -> bool:
    try:
        import_decord()
    except Exception:  # not installed (macOS arm64) or a broken build
        return False
    return True


def _file_meta(path: Path, probe, backend: str) -> VideoMeta:
    n = probe.frame_count
    ts = probe.timestamps()
    # duration: first frame start to last frame end (last frame lasts the median interval)
    step = float(np.median(np.diff(ts))) if n > 1 else (1.0 / probe.avg_fps if probe.avg_fps else 0.0)
    duration = float(ts[-1] + step) if n else 0.0
    vfr = is_variable_rate(ts)
    fps = n / duration if (vfr or not probe.avg_fps) and duration > 0 else probe.avg_fps
    w, h = probe.width, probe.height
    if probe.rotation in (90, 270):
        w, h = h, w
    return VideoMeta(
        path=path,
        frame_count=n,
        fps=float(fps),
        duration=duration,
        width=w,
        height=h,
        codec=probe.codec,
        rotation=probe.rotation,
        is_image_sequence=False,
        variable_frame_rate=vfr,
        backend=backend,
    )


def read_meta(path: str | os.PathLike) -> VideoMeta:
    """A video's :class:`VideoMeta` as :class:`VideoReader` gives it, without opening a decoder (an import needs
    the frame count, rate and size only; the container's index is kept for the reader that opens it next)."""
    p = Path(path)
    if p.is_dir():
        with VideoReader(p) as r:
            return r.meta
    return _file_meta(p, probe_file(p), "")


class VideoReader:
    """Read frames of ``path`` (a video file or a folder of images) by index.

    ``backend``: "auto" (decord when installed and able, else PyAV), "decord" or "pyav"; image folders ignore it.
    ``fps``: frame rate to report for an image folder (default 30); ignored for files.
    Raises ``VideoError(path, reason)`` for anything unreadable; never crashes or hangs on bad input.
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "auto", fps: float | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.path = Path(path)
        self._closed = False
        self._probe = None
        self._keyframes: np.ndarray
        self._timestamps: np.ndarray
        if self.path.is_dir():
            self._open_folder(fps)
        else:
            self._open_file(backend)

    # -- opening ---------------------------------------------------------------------------------------------
    def _open_folder(self, fps: float | None) -> None:
        files = list_image_sequence(self.path)
        w, h = image_size(files[0])
        for f in files[1:]:
            fw, fh = image_size(f)
            if (fw, fh) != (w, h):
                raise VideoError(
                    self.path, f"mixed frame sizes: {files[0].name} is {w}x{h} but {f.name} is {fw}x{fh}"
                )
        rate = float(fps) if fps else DEFAULT_IMAGE_FPS
        if rate <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        n = len(files)
        self.files = files
        self._backend = ImageSequenceBackend(self.path, files, w, h)
        self._rotation = 0
        self._timestamps = np.arange(n, dtype=np.float64) / rate
        self._keyframes = np.arange(n, dtype=np.int64)
        self.meta = VideoMeta(
            path=self.path,
            frame_count=n,
            fps=rate,
            duration=n / rate,
            width=w,
            height=h,
            codec=image_codec(files),
            rotation=0,
            is_image_sequence=True,
            backend=self._backend.name,
        )

    def _open_file(self, backend: str) -> None:
        probe = probe_file(self.path)
        self._backend = self._make_backend(probe, backend)
        self._probe = probe if backend == "auto" else None  # kept for a fallback to PyAV
        self._rotation = probe.rotation
        self._timestamps = probe.timestamps()
        self._keyframes = probe.keyframes
        self.meta = _file_meta(self.path, probe, self._backend.name)

    @staticmethod
    def _make_backend(probe, backend: str):
        if backend == "pyav":
            return PyAVBackend(probe)
        if backend == "decord":
            if probe.rotation:
                raise VideoError(
                    probe.path, "decord cannot decode rotated videos correctly; use backend='pyav'"
                )
            return DecordBackend(probe)
        if not probe.pts_reliable:  # decord returns wrong frames for AVI with B-frames
            log.info("%s: %s container, decoding with PyAV", probe.path, probe.container_format)
        elif probe.rotation == 0 and decord_available():
            try:
                return DecordBackend(probe)
            except VideoError as e:
                log.info("%s; falling back to PyAV", e)
        return PyAVBackend(probe)

    # -- access ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.meta.frame_count

    def _check_open(self) -> None:
        if self._closed:
            raise VideoError(self.path, "reader is closed")

    def _normalise(self, index) -> int:
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise TypeError(f"frame index must be an integer, not {type(index).__name__}") from None
        if isinstance(index, float) and index != i:
            raise TypeError(f"frame index must be an integer, not {index!r}")
        n = self.meta.frame_count
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise FrameIndexError(self.path, f"frame index {i} out of range: the video has {n} frames")
        return j

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative counts from the end) as RGB uint8 [H, W, 3]."""
        return self.get_batch([index])[0]

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as RGB uint8 [K, H, W, 3], in the order asked."""
        self._check_open()
        idx = [self._normalise(i) for i in indices]
        if not idx:
            return np.zeros((0, self.meta.height, self.meta.width, 3), dtype=np.uint8)
        uniq, inverse = np.unique(np.asarray(idx, dtype=np.int64), return_inverse=True)
        frames = rotate(self._read(uniq.tolist()), self._rotation)  # [U, H, W, 3], decoded in ascending order
        out = frames if len(uniq) == len(idx) and np.all(uniq == idx) else frames[inverse.reshape(-1)]
        return np.ascontiguousarray(out, dtype=np.uint8)

    def _read(self, indices: list[int]) -> np.ndarray:
        expected = (
            (self.meta.height, self.meta.width)
            if self._rotation in (0, 180)
            else (self.meta.width, self.meta.height)
        )
        try:
            frames = self._backend.read(indices)
            if frames.shape[1:3] != expected:
                raise VideoError(self.path, f"decoder returned {frames.shape[2]}x{frames.shape[1]} frames")
            return frames
        except VideoError as e:
            if self._backend.name != "decord" or self._probe is None:
                raise
            # "auto" chose decord and it failed on this file: PyAV serves it from now on
            log.warning("%s; switching to PyAV", e)
            self._backend.close()
            self._backend = PyAVBackend(self._probe)
            self.meta = replace(self.meta, backend=self._backend.name)
            return self._backend.read(indices)

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` for ``indices`` (sorted and de-duplicated here), decoded one frame at a time: a run of
        consecutive frames costs one seek, and only the frame being handed out is held (a 4K frame is 25 MB; a
        streaming consumer resizes it before asking for the next)."""
        self._check_open()
        for i in sorted({self._normalise(i) for i in indices}):
            yield i, np.ascontiguousarray(rotate(self._read([i]), self._rotation)[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every frame in order, decoded sequentially in chunks."""
        chunk = 16
        for start in range(0, len(self), chunk):
            yield from self.get_batch(range(start, min(start + chunk, len(self))))

    # -- helpers for caches, prefetchers and players ---------------------------------------------------------
    def keyframe_indices(self) -> np.ndarray:
        """Frame indices (ascending, int64) where decoding can start without earlier frames."""
        return self._keyframes.copy()

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation time of each frame in seconds from the first frame, float64 [N]."""
        return self._timestamps.copy()

    def index_at_time(self, seconds: float) -> int:
        """Index of the frame shown at ``seconds`` (the last frame starting at or before it), clamped."""
        i = int(np.searchsorted(self._timestamps, seconds + 1e-9, side="right")) - 1
        return min(max(i, 0), len(self) - 1)

    # -- lifetime --------------------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        m = getattr(self, "meta", None)
        if m is None:
            return f"VideoReader({str(self.path)!r})"
        return (
            f"VideoReader({str(self.path)!r}, {m.frame_count} frames, {m.width}x{m.height}, "
            f"{m.fps:.3f} fps, {m.codec}, backend={m.backend})"
        )
