"""The media queue's order: the open video first, nothing else while a video opens."""

from __future__ import annotations

import threading
import time

from endoreview.ui.proxies import MediaQueue, MediaRequest


def _recording_queue(done: list[int]) -> MediaQueue:
    q = MediaQueue()
    lock = threading.Lock()

    def process(req: MediaRequest) -> None:
        with lock:
            done.append(req.video_id)

    q._process = process  # what the queue would make for each video: recorded instead
    return q


def _wait(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_background_work_waits_while_a_video_opens_and_urgent_work_does_not():
    """App start with 200 videos: their thumbnails were being made while the first video opened, and its first
    frame waited for the CPU they took."""
    done: list[int] = []
    q = _recording_queue(done)
    try:
        q.hold(3.0)
        t0 = time.monotonic()
        q.request(MediaRequest(1, "/videos/a.mp4", 10))  # another video's thumbnail: waits
        q.request(MediaRequest(2, "/videos/open.mp4", 10), urgent=True)  # the open video's proxy: now
        assert _wait(lambda: 1 in done, timeout=30.0)
        assert done == [2, 1]  # the urgent one went ahead of the hold
        assert time.monotonic() - t0 >= 3.0  # the other waited for the hold to end
    finally:
        q.stop()


def test_without_a_hold_requests_run_in_order():
    done: list[int] = []
    q = _recording_queue(done)
    try:
        for k in range(1, 4):
            q.request(MediaRequest(k, f"/videos/{k}.mp4", 10))
        assert _wait(lambda: len(done) == 3)
        assert done == [1, 2, 3]
    finally:
        q.stop()


def test_the_queue_runs_nicer_than_the_app():
    """A 30-minute proxy build (decoding and encoding on every core for minutes) took the CPU from the player's first
    frame and the GUI thread; its thread (and the codec threads it starts) now run at a lower priority."""
    import os
    import sys

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    done: list[int] = []
    q = _recording_queue(done)
    try:
        q.request(MediaRequest(1, "/videos/a.mp4", 10))
        assert _wait(lambda: done == [1])
        app_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, q._thread.native_id) == min(19, app_nice + 10)
    finally:
        q.stop()
