"""Background decoding with read-ahead around the playhead.

A :class:`FrameServer` owns a few decode threads, each with its own reader (readers are used from one thread at a
time). The GUI asks for a frame with :meth:`FrameServer.request`, which never blocks: it returns the frame if it is
cached, otherwise ``None`` and the frame arrives later through the ``on_ready`` callback (called on a worker
thread; the UI marshals it to the GUI thread with a queued signal). Only the frame last asked for is announced:
read-ahead goes to the cache silently (45 frames read ahead at an open were 45 events for the GUI thread).

Scheduling follows what scrubbing needs:

* the newest explicit request is *urgent* and always decoded next; an older urgent request that no worker has picked
  up yet is dropped (the user has already moved on);
* after each request the server queues read-ahead (``readahead`` frames in the play direction and ``readbehind``
  frames the other way), cancelled between items when the playhead jumps elsewhere;
* workers decode contiguous runs in order, which readers serve without seeking.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol

import numpy as np

from endoreview.media.cache import FrameCache
from endoreview.media.guard import check_off_gui_thread

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """What the frame server needs from a reader (``core_model.video.VideoReader`` and ``ProxyReader`` fit)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...

    def close(self) -> None: ...


ReadyCallback = Callable[[Hashable, int, np.ndarray], None]
ErrorCallback = Callable[[Hashable, int, BaseException], None]


class FrameServer:
    def __init__(
        self,
        key: Hashable,
        open_source: Callable[[], FrameSource],
        frame_count: int,
        cache: FrameCache,
        on_ready: ReadyCallback,
        *,
        on_error: ErrorCallback | None = None,
        workers: int = 2,
        readahead: int = 45,
        readbehind: int = 8,
        run_length: int = 12,
        name: str = "frames",
    ) -> None:
        self.key = key
        self.frame_count = int(frame_count)
        self.cache = cache
        self._open_source = open_source
        self._on_ready = on_ready
        self._on_error = on_error
        self.readahead = int(readahead)
        self.readbehind = int(readbehind)
        self.run_length = max(1, int(run_length))
        self._cv = threading.Condition()
        self._urgent: int | None = None
        self._wanted: int | None = None  # the frame most recently asked for
        self._prefetch: deque[int] = deque()
        self._inflight: set[int] = set()
        self._generation = 0
        self._closed = False
        self.decoded = 0
        self.dropped_urgent = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-decode-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # ---- GUI-facing, never blocks -------------------------------------------------------------------------
    def request(self, index: int, *, direction: int = 1, prefetch: bool = True) -> np.ndarray | None:
        """The frame if cached; otherwise ``None`` and the frame is decoded next (delivered via ``on_ready``)."""
        index = self._clamp(index)
        with self._cv:  # with the worker's check in _run: a frame cached after this miss is delivered
            frame = self.cache.get(self.key, index)
            self._wanted = index
            if frame is None and index not in self._inflight:
                if self._urgent is not None and self._urgent != index:
                    self.dropped_urgent += 1
                self._urgent = index
            if prefetch:
                self._schedule_prefetch(index, direction)
            self._cv.notify_all()
        return frame

    def prefetch_around(self, index: int, direction: int = 1) -> None:
        with self._cv:
            self._schedule_prefetch(self._clamp(index), direction)
            self._cv.notify_all()

    def ensure_ahead(self, index: int, direction: int = 1) -> None:
        """Keep ``readahead`` frames queued ahead of a moving playhead without cancelling runs in progress."""
        index = self._clamp(index)
        step = 1 if direction >= 0 else -1
        with self._cv:
            kept = [i for i in self._prefetch if (i - index) * step > 0]
            queued = set(kept)
            for k in range(1, self.readahead + 1):
                i = index + step * k
                if not 0 <= i < self.frame_count:
                    break
                if i not in queued and i not in self._inflight and not self.cache.peek(self.key, i):
                    kept.append(i)
                    queued.add(i)
            self._prefetch = deque(kept)
            self._cv.notify_all()

    def cancel_prefetch(self) -> None:
        with self._cv:
            self._generation += 1
            self._prefetch.clear()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._prefetch.clear()
            self._urgent = None
            self._cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)

    @property
    def idle(self) -> bool:
        with self._cv:
            return self._urgent is None and not self._prefetch and not self._inflight

    # ---- internals -------------------------------------------------------------------------------------------
    def _clamp(self, index: int) -> int:
        return max(0, min(int(index), self.frame_count - 1))

    def _schedule_prefetch(self, index: int, direction: int) -> None:
        self._generation += 1
        self._prefetch.clear()
        step = 1 if direction >= 0 else -1
        ahead = [index + step * k for k in range(1, self.readahead + 1)]
        behind = [index - step * k for k in range(1, self.readbehind + 1)]
        # Behind frames are decoded as one forward run (readers go forward cheaply), after the ones ahead.
        for i in ahead + sorted(behind):
            if 0 <= i < self.frame_count and i not in self._inflight and not self.cache.peek(self.key, i):
                self._prefetch.append(i)

    def _release(self, index: int) -> None:
        with self._cv:
            self._inflight.discard(index)

    def _keep_going(self, rest: list[int]) -> bool:
        """The playhead jumped while a read-ahead run was in progress: go on if the rest holds the frame asked
        for; otherwise give the rest up, re-queueing those of its frames that the new window needs."""
        with self._cv:
            w = self._wanted
            if w is not None and w in rest:
                return True
            self._inflight.difference_update(rest)
            if w is not None:
                lo, hi = w - self.readbehind, w + self.readahead
                queued = set(self._prefetch)
                for i in reversed(rest):
                    if lo <= i <= hi and i not in queued and not self.cache.peek(self.key, i):
                        self._prefetch.appendleft(i)
            self._cv.notify_all()
            return False

    def _take(self) -> tuple[list[int], bool, int] | None:
        with self._cv:
            while not self._closed and self._urgent is None and not self._prefetch:
                self._cv.wait()
            if self._closed:
                return None
            if self._urgent is not None:
                run, urgent = [self._urgent], True
                self._urgent = None
            else:
                first = self._prefetch.popleft()
                run, urgent = [first], False
                while self._prefetch and len(run) < self.run_length and self._prefetch[0] == run[-1] + 1:
                    run.append(self._prefetch.popleft())
            self._inflight.update(run)
            return run, urgent, self._generation

    def _run(self) -> None:
        source: FrameSource | None = None
        try:
            while True:
                task = self._take()
                if task is None:
                    return
                run, urgent, generation = task
                pos = 0
                try:
                    if source is None:
                        check_off_gui_thread("open", str(self.key))
                        source = self._open_source()
                    for pos, index in enumerate(run):
                        if not urgent and generation != self._generation and not self._keep_going(run[pos:]):
                            break  # the playhead jumped: stale read-ahead
                        if not self.cache.peek(self.key, index):
                            check_off_gui_thread("decode", f"{self.key}[{index}]")
                            t0 = time.perf_counter()
                            frame = source[index]
                            self.decoded += 1
                            self.cache.put(self.key, index, frame)
                            log.debug(
                                "decoded %s[%d] in %.1f ms", self.key, index, 1e3 * (time.perf_counter() - t0)
                            )
                            self._release(index)
                            with self._cv:
                                wanted = index == self._wanted
                            if wanted:  # read-ahead waits in the cache: no call (no GUI event) per frame
                                self._on_ready(self.key, index, frame)
                        else:
                            self._release(index)
                except Exception as exc:  # report, keep the worker alive
                    log.warning("decoding %s%s failed: %s", self.key, run, exc)
                    with self._cv:
                        self._inflight.difference_update(run[pos:])
                    if self._on_error is not None:
                        self._on_error(self.key, run[pos], exc)
                    if source is not None:
                        try:
                            source.close()
                        except Exception:  # already failing
                            pass
                        source = None
                finally:
                    with self._cv:
                        self._cv.notify_all()
        finally:
            if source is not None:
                source.close()
