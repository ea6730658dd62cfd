"""The media queue's order: the open video first, nothing else while a video opens."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt

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

    from endoreview.media.priority import BACKGROUND_NICE

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    done: list[int] = []
    q = _recording_queue(done)
    try:
        q.request(MediaRequest(1, "/videos/a.mp4", 10))
        assert _wait(lambda: done == [1])
        app_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert (
            os.getpriority(os.PRIO_PROCESS, q._thread.native_id)
            == min(19, app_nice + BACKGROUND_NICE)
            > app_nice
        )
    finally:
        q.stop()


def _proxy_queue(monkeypatch, launched: list[list[str]]) -> MediaQueue:
    """A queue whose proxy builds can only happen in a child process (in this one build_proxy raises)."""
    import endoreview.media.proxy as proxy_mod
    from endoreview.services.jobs import JobService

    def not_here(*_a, **_k):
        raise AssertionError("the proxy was built in the app's process")

    monkeypatch.setattr(proxy_mod, "build_proxy", not_here)
    command = JobService(None).command
    return MediaQueue(command=lambda *args: (launched.append(list(args)), command(*args))[-1])


def _collect(q: MediaQueue) -> dict[str, list]:
    got: dict[str, list] = {"ready": [], "failed": [], "progress": [], "thumbs": []}
    q.proxyReady.connect(lambda vid, info: got["ready"].append((vid, info)))
    q.failed.connect(lambda vid, msg: got["failed"].append((vid, msg)))
    q.progress.connect(lambda vid, d, t: got["progress"].append((vid, d, t)))
    q.thumbReady.connect(lambda vid, strip: got["thumbs"].append(vid))
    return got


def test_a_proxy_is_built_by_a_child_process_and_arrives_as_before(qtbot, monkeypatch, indexed_video):
    """A 30-minute proxy built in the app's process held the interpreter lock from the GUI thread for minutes."""
    from endoreview.media.proxy import ProxyReader, find_proxy

    launched: list[list[str]] = []
    q = _proxy_queue(monkeypatch, launched)
    got = _collect(q)
    try:
        q.request(MediaRequest(7, str(indexed_video), 90), urgent=True)
        qtbot.waitUntil(lambda: got["thumbs"] == [7], timeout=60000)
    finally:
        q.stop()
    assert launched == [["proxy", "--source", str(indexed_video)]]
    ((vid, info),) = got["ready"]
    assert vid == 7 and info.frame_count == 90 and find_proxy(indexed_video) == info
    assert got["progress"][-1] == (7, 90, 90) and got["failed"] == []
    with ProxyReader(info.path) as r:
        assert len(r) == 90 and r[45].shape[:2] == (info.height, info.width)


def test_a_killed_proxy_child_leaves_no_proxy_says_why_and_the_queue_goes_on(qtbot, monkeypatch, tmp_path):
    import os
    import signal

    from endoreview.media.proxy import default_proxy_path, find_proxy, partial_path
    from tests.ui.helpers import make_indexed_video

    long = make_indexed_video(tmp_path / "long.mp4", n=600, width=160, height=120)
    short = make_indexed_video(tmp_path / "short.mp4", n=30, width=160, height=120)
    launched: list[list[str]] = []
    q = _proxy_queue(monkeypatch, launched)
    got = _collect(q)
    killed: list[int] = []

    def kill_on_first_progress(vid: int, done: int, total: int) -> None:
        if vid == 1 and not killed and q._child is not None:  # runs on the queue's thread, mid-build
            killed.append(q._child.pid)
            os.kill(q._child.pid, signal.SIGKILL)

    q.progress.connect(kill_on_first_progress, Qt.ConnectionType.DirectConnection)
    try:
        q.request(MediaRequest(1, str(long), 600))
        q.request(MediaRequest(2, str(short), 30))
        qtbot.waitUntil(lambda: 2 in got["thumbs"], timeout=60000)
    finally:
        q.stop()
    assert killed and [a[2] for a in launched] == [str(long), str(short)]
    ((vid, msg),) = got["failed"]
    assert vid == 1 and str(long) in msg and "exit status" in msg
    assert find_proxy(long) is None and not partial_path(default_proxy_path(long)).exists()
    assert 1 in got["thumbs"]  # its thumbnails come from the original
    assert [v for v, _ in got["ready"]] == [2]  # the next video's proxy as usual


def test_cancelling_a_video_stops_its_proxy_process_and_stop_leaves_none_running(
    qtbot, monkeypatch, tmp_path
):
    """A removed video's proxy build stops (no proxy, no error); quitting the app stops the one in progress."""
    from endoreview.media.proxy import default_proxy_path, find_proxy, partial_path
    from tests.ui.helpers import make_indexed_video

    a = make_indexed_video(tmp_path / "a.mp4", n=600, width=160, height=120)
    b = make_indexed_video(tmp_path / "b.mp4", n=600, width=160, height=120)
    c = make_indexed_video(tmp_path / "c.mp4", n=30, width=160, height=120)
    launched: list[list[str]] = []
    q = _proxy_queue(monkeypatch, launched)
    got = _collect(q)
    children = []
    q.progress.connect(
        lambda vid, d, t: (children.append(q._child), q.cancel(vid)) if vid == 1 and not children else None,
        Qt.ConnectionType.DirectConnection,  # on the queue's thread, mid-build
    )
    try:
        q.request(MediaRequest(1, str(a), 600))
        q.request(MediaRequest(2, str(c), 30))
        qtbot.waitUntil(lambda: 2 in got["thumbs"], timeout=60000)
        assert find_proxy(a) is None and not partial_path(default_proxy_path(a)).exists()
        assert got["failed"] == [] and 1 not in got["thumbs"] and [v for v, _ in got["ready"]] == [2]
        assert children[0].wait(timeout=10) is not None
        q.request(MediaRequest(3, str(b), 600))
        qtbot.waitUntil(lambda: any(v == 3 for v, _, _ in got["progress"]), timeout=60000)
        child = q._child
    finally:
        q.stop()
    assert child is not None and child.wait(timeout=10) is not None  # not left running after the app quits
    assert find_proxy(b) is None and not partial_path(default_proxy_path(b)).exists()
