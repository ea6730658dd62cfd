"""The media layer without Qt: frame cache, background decoding, proxies, thumbnails, the GUI-thread guard."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from endoreview.media import guard
from endoreview.media.cache import FrameCache
from endoreview.media.frameserver import FrameServer
from endoreview.media.proxy import ProxyError, ProxyReader, ProxySpec, build_proxy, find_proxy, proxy_size
from endoreview.media.thumbs import load_or_make_strip, make_strip, strip_indices
from tests.ui.helpers import indexed_frame, make_indexed_video, read_index


class ArraySource:
    """An in-memory reader with a per-frame decode cost, counting reads (stands in for a slow decoder)."""

    def __init__(self, n: int = 200, delay: float = 0.0) -> None:
        self.n, self.delay, self.reads = n, delay, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(self.delay)
        self.reads.append(i)
        return indexed_frame(i, 192, 32)

    def close(self) -> None:
        pass


def test_cache_evicts_least_recently_used_by_bytes():
    frame = np.zeros((10, 10, 3), np.uint8)  # 300 bytes
    c = FrameCache(max_bytes=1000)
    for i in range(3):
        c.put("v", i, frame)
    assert c.get("v", 0) is not None  # 0 is now most recent
    c.put("v", 3, frame)
    assert c.peek("v", 0) and not c.peek("v", 1) and c.peek("v", 3)
    assert c.nbytes <= 1000
    c.drop_source("v")
    assert len(c) == 0 and c.nbytes == 0


def _collector():
    got: dict[int, np.ndarray] = {}
    ev = threading.Event()

    def on_ready(key, i, frame):
        got[i] = frame
        ev.set()

    return got, ev, on_ready


def test_frameserver_delivers_requested_frame_and_reads_ahead():
    src = ArraySource(200)
    cache = FrameCache()
    got, _, on_ready = _collector()
    fs = FrameServer("v", lambda: src, 200, cache, on_ready, workers=2, readahead=20, readbehind=3)
    try:
        assert fs.request(50) is None  # never blocks: not decoded yet
        deadline = time.time() + 30  # returns as soon as done; long only for a loaded CI
        while not all(cache.peek("v", i) for i in range(47, 71)) and time.time() < deadline:
            time.sleep(0.01)
        assert read_index(got[50]) == 50
        assert all(cache.peek("v", i) for i in range(47, 71)), "read-ahead/behind around the playhead"
        # read-ahead waits in the cache without a call each (each was an event for the GUI thread to handle)
        assert sorted(got) == [50]
        assert fs.request(55) is not None  # now served from the cache at once
    finally:
        fs.close()


def test_frameserver_newest_request_wins_while_scrubbing():
    src = ArraySource(1000, delay=0.02)
    got, _, on_ready = _collector()
    fs = FrameServer("v", lambda: src, 1000, FrameCache(), on_ready, workers=1, readahead=0, readbehind=0)
    try:
        for i in range(0, 500, 10):  # a fast scrub: 50 requests, faster than frames decode
            fs.request(i)
        deadline = time.time() + 30  # returns as soon as done; long only for a loaded CI
        while 490 not in got and time.time() < deadline:
            time.sleep(0.01)
        assert 490 in got
        assert len(src.reads) < 10, f"stale requests were decoded: {src.reads}"
    finally:
        fs.close()


def test_frameserver_reports_decode_errors_and_keeps_running():
    class Broken(ArraySource):
        def __getitem__(self, i):
            if i == 7:
                raise OSError("corrupt packet")
            return super().__getitem__(i)

    errors, got = [], {}
    fs = FrameServer(
        "v",
        lambda: Broken(20),
        20,
        FrameCache(),
        lambda k, i, f: got.setdefault(i, f),
        on_error=lambda k, i, e: errors.append((i, str(e))),
        workers=1,
        readahead=0,
        readbehind=0,
    )
    try:
        fs.request(7)
        deadline = time.time() + 30  # returns as soon as done; long only for a loaded CI
        while not errors and time.time() < deadline:
            time.sleep(0.01)
        fs.request(8)
        while 8 not in got and time.time() < deadline:
            time.sleep(0.01)
        assert errors and "corrupt packet" in errors[0][1]
        assert 8 in got
    finally:
        fs.close()


def test_proxy_is_frame_exact_and_seekable(tmp_path, indexed_video):
    info = build_proxy(indexed_video, tmp_path / "p.mp4", ProxySpec(gop=8))
    assert info.frame_count == 90 and (info.width, info.height) == (320, 240)
    assert find_proxy(indexed_video, tmp_path / "p.mp4") == info
    rng = np.random.default_rng(0)
    with ProxyReader(info.path, info.fps) as r:
        assert len(r) == 90
        order = list(rng.integers(0, 90, 25)) + [89, 0, 1, 2, 3]
        for i in order:
            assert read_index(r[int(i)]) == int(i)


def test_proxy_downscales_large_video_and_detects_a_changed_source(tmp_path):
    src = make_indexed_video(tmp_path / "big.mp4", n=12, width=1280, height=720, gop=12)
    out = tmp_path / "big-proxy.mp4"
    info = build_proxy(src, out)
    assert (info.width, info.height) == proxy_size(1280, 720, ProxySpec()) == (960, 540)
    with ProxyReader(out) as r:
        assert read_index(r[11], width=1280) == 11
    src.write_bytes(src.read_bytes() + b"\0")  # the file changed: its proxy must not be used
    assert find_proxy(src, out) is None


def test_proxy_of_a_bad_file_names_the_file(tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"hello")
    with pytest.raises(ProxyError, match="not_a_video.mp4"):
        build_proxy(bad, tmp_path / "x.mp4")
    with pytest.raises(ProxyError, match="file not found"):
        build_proxy(tmp_path / "gone.mp4", tmp_path / "y.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_no_proxy_for_a_rotated_video(tmp_path):
    import av

    p = tmp_path / "rot.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(5):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    with pytest.raises(ProxyError, match="rotated"):
        build_proxy(p, tmp_path / "rot-proxy.mp4")
    assert not (tmp_path / "rot-proxy.mp4").exists()


def test_thumbnail_strip(indexed_video):
    assert strip_indices(90, 6) == [7, 22, 37, 52, 67, 82]
    strip = make_strip(ArraySource(90), 90, n=6, height=16)
    assert strip.shape == (16, 6 * 96, 3)
    from core_model.video import VideoReader

    path, strip = load_or_make_strip(indexed_video, lambda: VideoReader(indexed_video), 90, n=4, height=48)
    assert path.is_file() and strip.shape == (48, 4 * 64, 3)
    path2, strip2 = load_or_make_strip(
        indexed_video, lambda: pytest.fail("must come from the cache"), 90, n=4, height=48
    )
    assert path2 == path and np.array_equal(strip, strip2)


def test_guard_refuses_blocking_calls_on_the_gui_thread(indexed_video):
    guard.mark_gui_thread(strict=True)
    guard.clear_violations()
    try:
        with pytest.raises(guard.BlockingCallOnGuiThread):
            make_strip(ArraySource(10), 10)
        with pytest.raises(guard.BlockingCallOnGuiThread):
            build_proxy(indexed_video)
        assert [v.kind for v in guard.violations()] == ["thumbnail", "proxy"]
        # the same calls on a worker thread are fine
        out = []
        t = threading.Thread(target=lambda: out.append(make_strip(ArraySource(10), 10, n=2, height=8)))
        t.start()
        t.join()
        assert out and out[0].shape[0] == 8
    finally:
        guard.unmark_gui_thread()
        guard.clear_violations()
    guard.mark_gui_thread(strict=False)  # lenient mode records instead of raising
    try:
        make_strip(ArraySource(10), 10, n=1, height=8)
        assert len(guard.violations()) == 1
    finally:
        guard.unmark_gui_thread()
        guard.clear_violations()
