"""Background building of proxies and thumbnail strips, one video at a time (the machine's cores are shared).

The video the user has open jumps the queue, and the rest waits while a video opens (:meth:`MediaQueue.hold`: the
thumbnails of a large library being made at start-up took CPU from the first frame). Results come back on the GUI
thread as signals.

A proxy is built in a child process (the ``proxy`` job kind, :mod:`endoreview.jobs.proxy`, started niced from the
queue's thread), which reports its progress as JSON lines: a 30-minute 1080p proxy is ~500 s of CPU, and in this
process its per-frame Python work and allocations held the interpreter lock and fed the garbage collector that the
GUI thread waits on. :meth:`MediaQueue.stop` (the app quits) and :meth:`MediaQueue.cancel` (a video is removed) stop
the child; a stopped, failed or killed child leaves no proxy (the proxy is renamed into place only when complete)
and the queue goes on with the next video. Thumbnails (a few seconds) are made in the queue's thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from endoreview.jobs.protocol import parse_line
from endoreview.media.opener import long_lived_opener, proxy_opener
from endoreview.media.priority import BACKGROUND_NICE, lower_priority
from endoreview.media.proxy import (
    ProxyCancelled,
    ProxyError,
    ProxyInfo,
    default_proxy_path,
    find_proxy,
    partial_path,
)
from endoreview.media.thumbs import load_or_make_strip
from endoreview.ui.library import STRIP_TILES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaRequest:
    video_id: int
    path: str
    frame_count: int
    proxy: bool = True
    thumbs: bool = True


class MediaQueue(QObject):
    proxyReady = Signal(int, object)  # video id, ProxyInfo
    thumbReady = Signal(int, object)  # video id, RGB strip
    failed = Signal(int, str)
    progress = Signal(int, int, int)  # video id, done, total

    def __init__(
        self, parent: QObject | None = None, command: Callable[..., list[str]] | None = None
    ) -> None:
        """``command(kind, *args)``: the command line of a row-less job kind (default: the app's job launcher,
        :meth:`endoreview.services.jobs.JobService.command`)."""
        super().__init__(parent)
        if command is None:
            from endoreview.services.jobs import JobService

            command = JobService(None).command
        self._command = command
        self._child: subprocess.Popen | None = None  # the proxy process now running
        self._cancelled: set[int] = set()  # videos whose work in progress was cancelled
        self._heap: list[tuple[int, int, MediaRequest]] = []
        self._counter = itertools.count()
        self._queued: set[int] = set()
        self._cv = threading.Condition()
        self._stop = False
        self._current: int | None = None
        self._hold_until = 0.0  # time.monotonic(): non-urgent work waits until then
        self._thread = threading.Thread(target=self._run, name="media-queue", daemon=True)
        self._thread.start()

    def request(self, req: MediaRequest, urgent: bool = False) -> None:
        with self._cv:
            if req.video_id in self._queued and not urgent:
                return
            self._queued.add(req.video_id)
            heapq.heappush(self._heap, (0 if urgent else 1, next(self._counter), req))
            self._cv.notify()

    def hold(self, seconds: float) -> None:
        """Start no non-urgent work (thumbnails, other videos' proxies) for ``seconds``: a video is opening and its
        first frame should not share the CPU with them. Urgent requests go ahead; work in progress finishes."""
        with self._cv:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    def cancel(self, video_id: int) -> None:
        """Drop the queued work of ``video_id`` and stop its proxy process if one runs (the video was removed)."""
        with self._cv:
            self._heap = [e for e in self._heap if e[2].video_id != video_id]
            heapq.heapify(self._heap)
            if self._current == video_id:
                self._cancelled.add(video_id)
                self._stop_child()
            else:
                self._queued.discard(video_id)

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._heap.clear()
            self._stop_child()
            self._cv.notify()
        self._thread.join(timeout=3.0)

    def _stop_child(self) -> None:
        """(holding ``_cv``) SIGTERM to the proxy process: it stops at the next frame and removes its partial file."""
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._heap) + (1 if self._current is not None else 0)

    def _run(self) -> None:
        # building a 30-minute proxy decodes and encodes on every core for minutes: at the app's own priority it
        # took the CPU from the player's first frame and the GUI thread (stalls of 0.3-0.9 s)
        lower_priority(BACKGROUND_NICE)
        while True:
            with self._cv:
                while True:
                    while not self._stop and not self._heap:
                        self._cv.wait()
                    if self._stop:
                        return
                    wait = self._hold_until - time.monotonic()
                    if self._heap[0][0] == 0 or wait <= 0:
                        break
                    self._cv.wait(wait)  # an urgent request (notify) or the end of the hold
                _, _, req = heapq.heappop(self._heap)
                self._current = req.video_id
            try:
                self._process(req)
            except Exception as exc:  # keep the queue alive; tell the user which video
                log.warning("media for video %d failed: %s", req.video_id, exc)
                self.failed.emit(req.video_id, str(exc))
            finally:
                with self._cv:
                    self._current = None
                    self._cancelled.discard(req.video_id)
                    if not any(r.video_id == req.video_id for _, _, r in self._heap):
                        self._queued.discard(req.video_id)

    def _process(self, req: MediaRequest) -> None:
        src = Path(req.path)
        if not src.exists():
            self.failed.emit(req.video_id, f"{src}: file not found")
            return
        info: ProxyInfo | None = find_proxy(src) if src.is_file() else None
        wrote = False  # a new proxy (MBs; strips are KBs): trim the cache to the limit afterwards
        if req.proxy and info is None and src.is_file():
            try:
                wrote = True
                info = self._build_proxy(req.video_id, src)
            except ProxyCancelled:
                return
            except ProxyError as exc:
                log.info("no proxy for video %d: %s", req.video_id, exc.reason)
                info = None
        if info is not None:
            if info.frame_count != req.frame_count:
                log.warning(
                    "proxy of video %d has %d frames, the video %d: not used",
                    req.video_id,
                    info.frame_count,
                    req.frame_count,
                )
                info = None
            else:
                self.proxyReady.emit(req.video_id, info)
        if req.thumbs and not self._stop:
            if info is not None:
                opener, n = proxy_opener(info), info.frame_count
            else:
                opener, n = long_lived_opener(src), req.frame_count
            _, strip = load_or_make_strip(src, opener, n, n=STRIP_TILES, height=72)
            self.thumbReady.emit(req.video_id, strip)
        if wrote:
            self._trim_cache(keep=info.path if info is not None else None)

    def _build_proxy(self, video_id: int, src: Path) -> ProxyInfo:
        """Build ``src``'s proxy in a child process (``proxy`` job kind); its progress becomes :attr:`progress`.
        Raises :class:`ProxyError` when the video cannot have one (the child said why) or the child died without a
        word (a clear message: also emitted as :attr:`failed`), :class:`ProxyCancelled` when it was stopped."""
        argv = self._command("proxy", "--source", str(src))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with tempfile.TemporaryFile() as errors:
            with self._cv:
                if self._stop or video_id in self._cancelled:
                    raise ProxyCancelled(src, "cancelled")
                # started from this (niced) thread: the child and its codec threads run at its priority
                child = self._child = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env, text=True
                )
            end: dict = {}
            try:
                assert child.stdout is not None
                for line in child.stdout:
                    ev = parse_line(line)
                    if ev is None:
                        continue
                    if ev["event"] == "progress":
                        self.progress.emit(video_id, int(ev.get("done", 0)), int(ev.get("total", 0)))
                    elif ev["event"] == "done":
                        end = ev
                code = child.wait()
            finally:
                with self._cv:
                    self._child = None
                    cancelled = self._stop or video_id in self._cancelled
                if child.poll() is None:  # left the loop by an exception: never leave the child running
                    child.kill()
                    child.wait()
            if end.get("state") == "succeeded":
                return ProxyInfo(**end["proxy"])
            partial_path(default_proxy_path(src)).unlink(missing_ok=True)  # a killed child's half file
            if cancelled or end.get("state") == "cancelled":
                raise ProxyCancelled(src, "cancelled")
            if end.get("state") == "failed":
                raise ProxyError(src, str(end.get("message") or "proxy build failed"))
            errors.seek(0)
            tail = errors.read()[-600:].decode("utf-8", "replace").strip()
        message = f"the proxy process ended with exit status {code} before finishing" + (
            f": {tail.splitlines()[-1]}" if tail else ""
        )
        self.failed.emit(video_id, f"{src}: {message}")
        raise ProxyError(src, message)

    @staticmethod
    def _trim_cache(keep: Path | None) -> None:
        from endoreview.services.app_settings import trim_caches

        try:
            trim_caches(protect=(keep,) if keep is not None else ())
        except OSError as exc:  # a full or read-only cache never stops review
            log.warning("could not trim the cache: %s", exc)
