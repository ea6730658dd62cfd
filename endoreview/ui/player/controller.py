"""Playback state and frame delivery for one open video (no widgets here).

Frames come from :class:`endoreview.media.frameserver.FrameServer` threads: the proxy (display resolution, short
GOP) while scrubbing and playing, the original once the playhead rests (so a paused frame is shown exactly, at full
resolution). Until a proxy exists, the original is read with read-ahead.

Playback is driven by presentation timestamps: at each timer tick the frame due is
``start_frame + floor((now - start_time) * fps * speed)``; a frame that is not decoded in time is counted late and
skipped, never waited for. ``presented`` records ``(frame, time)`` for every frame shown (benchmarks use it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from endoreview.media.cache import FrameCache
from endoreview.media.frameserver import FrameServer, FrameSource

log = logging.getLogger(__name__)

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)
REFINE_DELAY_MS = 150
READAHEAD_DELAY_MS = (
    90  # while the user scrubs, decode only what is asked for; read ahead once the playhead rests
)
OPEN_READAHEAD_MAX_MS = 1000  # read-ahead starts by then even if the full-resolution first frame has not come
#: read-ahead starts this long after an opened video's full-resolution first frame: its tracks and labels arrive and
#: are drawn meanwhile (reading ahead at once, two decoders took the cores from the GUI thread drawing them: 30-minute
#: video, median GUI stall 165 -> 129 ms in 5 alternating runs)
OPEN_SETTLE_MS = 500


@dataclass(frozen=True)
class VideoSource:
    """What the player needs to show a video; built by the window from a library entry."""

    key: Hashable
    path: str
    frame_count: int
    fps: float
    width: int
    height: int
    open_original: Callable[[], FrameSource]
    open_proxy: Callable[[], FrameSource] | None = None
    proxy_size: tuple[int, int] | None = None


class _FrameBridge(QObject):
    ready = Signal(object, int, object)
    failed = Signal(object, int, str)


class PlayerController(QObject):
    frameChanged = Signal(int)  # the playhead (requested frame) moved
    framePresented = Signal(int, object, bool)  # index, RGB array, full resolution?
    playingChanged = Signal(bool)
    speedChanged = Signal(float)
    sourceChanged = Signal(object)  # VideoSource or None
    sourceError = Signal(str)

    def __init__(self, cache: FrameCache | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache or FrameCache()
        self.source: VideoSource | None = None
        self._proxy: FrameServer | None = None
        self._original: FrameServer | None = None
        self._bridge = _FrameBridge()
        self._bridge.ready.connect(self._on_ready)
        self._bridge.failed.connect(self._on_failed)
        self.current = 0
        self.shown: tuple[int, bool] | None = None  # (index, full_res) on screen
        self.playing = False
        self.speed = 1.0
        self.direction = 1
        self._clock0 = 0.0
        self._frame0 = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._refine = QTimer(self)
        self._refine.setSingleShot(True)
        self._refine.timeout.connect(self._request_full_res)
        self._readahead = QTimer(self)
        self._readahead.setSingleShot(True)
        self._readahead.timeout.connect(self._start_readahead)
        self._opening = False  # a video was just opened: no read-ahead before its full-resolution frame
        self.record_presented = False
        self.presented: list[tuple[int, float]] = []
        self.late_frames = 0

    # ---- opening ------------------------------------------------------------------------------------------
    def open(self, source: VideoSource, start: int = 0) -> None:
        self.close()
        self.source = source
        self._original = self._server(("orig", source.key), source.open_original, full=True)
        if source.open_proxy is not None:
            self._proxy = self._server(("proxy", source.key), source.open_proxy, full=False)
        self.sourceChanged.emit(source)
        # the first frame alone, from each resolution: read-ahead waits until the full-resolution frame is on screen
        # (60 proxy frames decoded meanwhile took a third of a second of CPU from the original's first frame)
        self._opening = True
        self._readahead.start(OPEN_READAHEAD_MAX_MS)
        self.seek(start)
        if self._proxy is not None and self.shown != (start, True):
            # the playhead rests where the video opens: its full-resolution frame is read at once, alongside the
            # proxy's (opening the original's decoder is most of the wait)
            self._original.request(start, prefetch=False)

    def set_proxy(self, open_proxy: Callable[[], FrameSource], size: tuple[int, int]) -> None:
        """A proxy finished building for the open video: scrub from it from now on."""
        if self.source is None or self._proxy is not None:
            return
        self.source = VideoSource(**{**self.source.__dict__, "open_proxy": open_proxy, "proxy_size": size})
        self._proxy = self._server(("proxy", self.source.key), open_proxy, full=False)
        self._original.readahead = 4  # the proxy carries scrubbing and playback now

    def _server(self, key: Hashable, opener: Callable[[], FrameSource], full: bool) -> FrameServer:
        src = self.source
        assert src is not None
        with_proxy = src.open_proxy is not None
        return FrameServer(
            key,
            opener,
            src.frame_count,
            self.cache,
            on_ready=lambda k, i, f: self._bridge.ready.emit(k, i, f),
            on_error=lambda k, i, e: self._bridge.failed.emit(k, i, str(e)),
            workers=2 if (not full or not with_proxy) else 1,
            readahead=(4 if with_proxy else 45) if full else 60,
            readbehind=2 if full and with_proxy else 8,
            name="proxy" if not full else "orig",
        )

    def close(self) -> None:
        self.pause()
        self._refine.stop()
        self._readahead.stop()
        self._opening = False
        for server in (self._proxy, self._original):
            if server is not None:
                server.close()
                self.cache.drop_source(server.key)
        self._proxy = self._original = None
        self.source = None
        self.shown = None
        self.sourceChanged.emit(None)

    @property
    def frame_count(self) -> int:
        return self.source.frame_count if self.source else 0

    @property
    def fps(self) -> float:
        return self.source.fps if self.source and self.source.fps > 0 else 30.0

    # ---- navigation ---------------------------------------------------------------------------------------
    def seek(self, index: int) -> None:
        if self.source is None:
            return
        index = max(0, min(int(index), self.frame_count - 1))
        self.direction = 1 if index >= self.current else -1
        self.current = index
        if self.playing:
            self._frame0, self._clock0 = index, time.perf_counter()
        self.frameChanged.emit(index)
        self._show(index, urgent=True)

    def step(self, n: int) -> None:
        self.pause()
        self.seek(self.current + n)

    def seek_time(self, seconds: float) -> None:
        self.seek(int(round(seconds * self.fps)))

    def _primary(self) -> FrameServer | None:
        return self._proxy or self._original

    def _show(self, index: int, urgent: bool) -> bool:
        """Present ``index`` now if any resolution is cached; else request it. True when presented."""
        self._refine.stop()
        orig = self._original
        if orig is None:
            return False
        full = self.cache.get(orig.key, index)
        if full is not None:
            self._present(index, full, True)
            if self.playing:
                self._primary().ensure_ahead(index, self.direction)
            return True
        primary = self._primary()
        prefetch = not (self.playing or self._opening)
        frame = primary.request(index, direction=self.direction, prefetch=prefetch) if urgent else None
        if frame is None and not urgent:
            frame = self.cache.get(primary.key, index)
        if self.playing:
            primary.ensure_ahead(index, self.direction)
        if frame is not None:
            self._present(index, frame, primary is orig)
            if primary is not orig and not self.playing:
                self._refine.start(REFINE_DELAY_MS)
            return True
        return False

    def _start_readahead(self) -> None:
        self._opening = False
        primary = self._primary()
        if primary is not None and not self.playing:
            primary.prefetch_around(self.current, self.direction)

    def _present(self, index: int, frame: np.ndarray, full: bool) -> None:
        self.shown = (index, full)
        if full and self._opening:
            self._readahead.start(OPEN_SETTLE_MS)
        if self.record_presented:
            self.presented.append((index, time.perf_counter()))
        self.framePresented.emit(index, frame, full)

    def _request_full_res(self) -> None:
        if self._original is None or self.playing or self._proxy is None:
            return
        frame = self._original.request(self.current, prefetch=False)
        if frame is not None:
            self._present(self.current, frame, True)

    def _on_ready(self, key: Hashable, index: int, frame: np.ndarray) -> None:
        if self.source is None or index != self.current:
            return
        is_full = self._original is not None and key == self._original.key
        if self.shown == (index, True) or (self.shown == (index, False) and not is_full):
            return
        self._present(index, frame, is_full)
        if not is_full and not self.playing:
            self._refine.start(REFINE_DELAY_MS)

    def _on_failed(self, key: Hashable, index: int, message: str) -> None:
        self.sourceError.emit(message)

    # ---- playback -----------------------------------------------------------------------------------------
    def play(self) -> None:
        if self.source is None or self.playing:
            return
        if self.current >= self.frame_count - 1:
            self.seek(0)
        self.playing = True
        self._readahead.stop()
        self._opening = False
        self.direction = 1
        self._frame0, self._clock0 = self.current, time.perf_counter()
        self._primary().prefetch_around(self.current, 1)
        self._timer.start(max(2, int(500 / (self.fps * self.speed))))
        self.playingChanged.emit(True)

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self._timer.stop()
        self.playingChanged.emit(False)
        if self.shown and self.shown[0] == self.current and not self.shown[1]:
            self._refine.start(REFINE_DELAY_MS)

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def set_speed(self, speed: float) -> None:
        speed = float(min(4.0, max(0.25, speed)))
        if self.playing:
            self._frame0, self._clock0 = self.current, time.perf_counter()
            self._timer.setInterval(max(2, int(500 / (self.fps * speed))))
        self.speed = speed
        self.speedChanged.emit(speed)

    def faster(self) -> None:
        bigger = [s for s in SPEEDS if s > self.speed]
        self.set_speed(bigger[0] if bigger else SPEEDS[-1])

    def slower(self) -> None:
        smaller = [s for s in SPEEDS if s < self.speed]
        self.set_speed(smaller[-1] if smaller else SPEEDS[0])

    def _tick(self) -> None:
        if not self.playing or self.source is None:
            return
        due = self._frame0 + int(math.floor((time.perf_counter() - self._clock0) * self.fps * self.speed))
        if due >= self.frame_count:
            self.seek(self.frame_count - 1)
            self.pause()
            return
        if due == self.current and self.shown and self.shown[0] == due:
            return
        if due != self.current:
            if self.shown is None or self.shown[0] != self.current:
                self.late_frames += due - self.current
            self.current = due
            self.frameChanged.emit(due)
        self._show(due, urgent=False) or self._primary().request(due, prefetch=False)
