"""VideoReader returns exactly the frame asked for, from files (decord and PyAV) and image folders."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from core_model.video import FrameIndexError, VideoError, VideoReader, decord_available, write_video

SIZE = 96  # frame side; 16 blocks of 24 px each encode 16 bits
BITS = 16


def code_frame(i: int, size: int = SIZE) -> np.ndarray:
    """A frame whose 4x4 grid of big black/white blocks spells ``i`` in binary, over a moving texture."""
    yy, xx = np.mgrid[0:size, 0:size]
    texture = (40 + 20 * np.sin((xx + 3 * i) / 5.0) * np.cos(yy / 7.0)).astype(np.uint8)
    f = np.repeat(texture[..., None], 3, axis=2)
    b = size // 4
    for k in range(BITS):
        r, c = divmod(k, 4)
        if (i >> k) & 1:
            f[r * b + 3 : (r + 1) * b - 3, c * b + 3 : (c + 1) * b - 3] = (230, 200, 210)
    return f


def read_code(frame: np.ndarray, size: int = SIZE) -> int:
    b = size // 4
    v = 0
    for k in range(BITS):
        r, c = divmod(k, 4)
        y, x = r * b + b // 2, c * b + b // 2
        if frame[y - 4 : y + 4, x - 4 : x + 4].mean() > 135:
            v |= 1 << k
    return v


N_LONG = 300


@pytest.fixture(scope="module")
def long_gop_h264(tmp_path_factory):
    """H.264, 300 frames, keyframe every 250 frames, 3 B-frames: seeks must decode from the keyframe."""
    p = tmp_path_factory.mktemp("vid") / "long_gop.mp4"
    write_video(p, (code_frame(i) for i in range(N_LONG)), fps=25, codec="libx264", gop=250, bframes=3)
    return p


def _backends():
    out = ["pyav"]
    if decord_available():
        out.append("decord")
    return out


@pytest.mark.parametrize("backend", _backends())
def test_random_access_is_frame_exact_on_long_gop_h264_with_bframes(long_gop_h264, backend):
    import av

    with av.open(str(long_gop_h264)) as c:  # the file really has B-frames and a long GOP
        types = {str(f.pict_type) for f in c.decode(video=0)}
    assert any("B" in t or t == "3" for t in types), types
    rng = np.random.default_rng(7)
    idx = rng.integers(0, N_LONG, size=40).tolist() + [0, N_LONG - 1, 249, 250, 251]
    with VideoReader(long_gop_h264, backend=backend) as r:
        assert r.meta.backend == backend
        assert len(r) == N_LONG
        assert r.keyframe_indices().tolist() == [0, 250]
        for i in idx:  # one at a time, random order: every read seeks
            assert read_code(r[i]) == i
        batch = r.get_batch(idx)  # any order, repeats allowed: returned in the order asked
        assert [read_code(f) for f in batch] == idx
        assert read_code(r[-1]) == N_LONG - 1


def test_metadata_of_a_file(long_gop_h264):
    with VideoReader(long_gop_h264) as r:
        m = r.meta
        assert (m.frame_count, m.width, m.height, m.codec, m.rotation) == (N_LONG, SIZE, SIZE, "h264", 0)
        assert m.fps == pytest.approx(25.0)
        assert m.duration == pytest.approx(N_LONG / 25.0)
        assert not m.is_image_sequence and not m.variable_frame_rate
        assert r.timestamps[:3] == pytest.approx([0.0, 0.04, 0.08])
        assert r.index_at_time(1.0) == 25 and r.index_at_time(99.0) == N_LONG - 1


def test_iteration_yields_every_frame_in_order(tmp_path):
    p = write_video(tmp_path / "short.mkv", (code_frame(i) for i in range(37)), fps=30, bframes=2)
    with VideoReader(p) as r:
        assert [read_code(f) for f in r] == list(range(37))


def test_avi_with_bframes_is_frame_exact(tmp_path):
    # AVI has no presentation timestamps; decord returns wrong frames here, so the reader uses PyAV and counts
    p = write_video(tmp_path / "clip.avi", (code_frame(i) for i in range(60)), fps=30, bframes=3, gop=30)
    with VideoReader(p) as r:
        assert r.meta.backend == "pyav"
        idx = [59, 3, 31, 30, 0, 45, 44, 12]
        assert [read_code(f) for f in r.get_batch(idx)] == idx
        assert [read_code(r[i]) for i in idx] == idx


@pytest.mark.parametrize(
    ("name", "codec", "decoded_as"),
    [
        ("a.mp4", "mpeg4", "mpeg4"),
        ("b.webm", "libvpx-vp9", "vp9"),
        ("c.mp4", "libx265", "hevc"),
        ("d.avi", "mjpeg", "mjpeg"),
        ("e.mov", "libx264", "h264"),
    ],
)
def test_other_codecs_and_containers(tmp_path, name, codec, decoded_as):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} encoder not in this PyAV build")
    p = write_video(tmp_path / name, (code_frame(i) for i in range(20)), codec=codec, crf=20)
    for backend in _backends():
        with VideoReader(p, backend=backend) as r:
            assert r.meta.codec == decoded_as and len(r) == 20
            assert [read_code(f) for f in r.get_batch([19, 7, 0, 8])] == [19, 7, 0, 8]


def test_variable_frame_rate_maps_index_to_pts(tmp_path):
    import av

    p = tmp_path / "vfr.mp4"
    times_ms = np.cumsum([0] + [33, 33, 100, 33, 250, 33, 33, 66, 33] * 3)  # irregular intervals
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=30, options={"bf": "2"})
        s.width, s.height, s.pix_fmt = SIZE, SIZE, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(code_frame(i), format="rgb24")
            f.pts, f.time_base = int(t), Fraction(1, 1000)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    n = len(times_ms)
    for backend in _backends():
        with VideoReader(p, backend=backend) as r:
            assert len(r) == n
            assert r.meta.variable_frame_rate
            assert r.timestamps == pytest.approx(times_ms / 1000.0, abs=1e-3)
            assert r.meta.fps == pytest.approx(n / r.meta.duration)
            assert r.index_at_time(0.5) == int(np.searchsorted(times_ms, 500, side="right") - 1)
            idx = [n - 1, 4, 5, 17, 0]
            assert [read_code(f) for f in r.get_batch(idx)] == idx


def _write_rotated(p):
    """64x48 stored frames with a red mark at the top-left, displayed rotated 90 degrees."""
    import av

    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:8, :16] = (255, 0, 0)  # red mark at the top-left of the stored frame
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(5):
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return p


def test_rotated_file_is_returned_upright(tmp_path):
    p = _write_rotated(tmp_path / "rot.mp4")
    with VideoReader(p) as r:
        assert r.meta.rotation == 90 and (r.meta.width, r.meta.height) == (48, 64)
        f = r[2]
        assert f.shape == (64, 48, 3)
        # 90 deg counter-clockwise: the stored top-left corner is now bottom-left
        assert f[-8:, :8, 0].mean() > 200 and f[:8, :8, 0].mean() < 50


def test_image_folder_natural_order_and_exact_frames(tmp_path):
    import cv2

    folder = tmp_path / "Original"
    folder.mkdir()
    n = 23
    for i in range(n):  # 1.png ... 23.png: lexical order would put 10.png before 2.png
        ext = ".png" if i % 2 else ".tif"
        cv2.imwrite(str(folder / f"{i + 1}{ext}"), cv2.cvtColor(code_frame(i), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    with VideoReader(folder, fps=25) as r:
        m = r.meta
        assert m.is_image_sequence and m.frame_count == n and (m.width, m.height) == (SIZE, SIZE)
        assert m.fps == 25 and m.duration == pytest.approx(n / 25)
        assert [p.name for p in r.files[:3]] == ["1.tif", "2.png", "3.tif"] and r.files[9].name == "10.png"
        idx = [22, 9, 1, 0, 10, 9]
        assert [read_code(f) for f in r.get_batch(idx)] == idx
        np.testing.assert_array_equal(r[5], code_frame(5))  # lossless formats: bit-exact RGB
        assert [read_code(f) for f in r] == list(range(n))


def test_out_of_range_index_names_the_file(long_gop_h264):
    with VideoReader(long_gop_h264) as r:
        for bad in (N_LONG, -N_LONG - 1, 10**9):
            with pytest.raises(FrameIndexError) as e:
                r[bad]
            assert str(long_gop_h264) in str(e.value) and "out of range" in str(e.value)
        with pytest.raises(IndexError):  # also a plain IndexError
            r.get_batch([0, N_LONG])
        with pytest.raises(TypeError):
            r[1.5]
        assert r.get_batch([]).shape == (0, SIZE, SIZE, 3)
    with pytest.raises(VideoError, match="closed"):
        r[0]


def test_one_reader_per_thread_reads_exact_frames_concurrently(long_gop_h264):
    from concurrent.futures import ThreadPoolExecutor

    def work(seed: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng(seed)
        with VideoReader(long_gop_h264) as r:
            return [(int(i), read_code(r[int(i)])) for i in rng.integers(0, N_LONG, 8)]

    with ThreadPoolExecutor(3) as pool:
        results = [pair for chunk in pool.map(work, range(3)) for pair in chunk]
    assert all(want == got for want, got in results)


def test_keyframes_and_sorted_runs_for_caches(tmp_path):
    """A cache can ask where decoding is cheap and fetch a whole run in one call."""
    p = write_video(tmp_path / "gop10.mp4", (code_frame(i) for i in range(50)), gop=10, bframes=0)
    with VideoReader(p) as r:
        kf = r.keyframe_indices()
        assert kf.tolist() == list(range(0, 50, 10))
        run = r.get_batch(range(kf[2], kf[3]))
        assert [read_code(f) for f in run] == list(range(20, 30))


@pytest.mark.slow
def test_long_video_random_seeks_are_exact(tmp_path):
    """3,000 frames (2 minutes at 25 fps), GOP 250 with B-frames: where decord2 was seen to return wrong frames."""
    n = 3000
    p = write_video(
        tmp_path / "long.mp4",
        (code_frame(i) for i in range(n)),
        fps=25,
        gop=250,
        bframes=3,
        preset="veryfast",
    )
    rng = np.random.default_rng(3)
    idx = rng.integers(0, n, 60).tolist()
    for backend in _backends():
        with VideoReader(p, backend=backend) as r:
            assert len(r) == n
            assert [read_code(r[i]) for i in idx] == idx


@pytest.mark.skipif(not decord_available(), reason="decord not installed")
def test_auto_falls_back_to_pyav_when_decord_fails_mid_file(long_gop_h264, monkeypatch):
    from core_model.video import backends

    def broken(self, indices):
        raise VideoError(self._path, "simulated decord failure")

    with VideoReader(long_gop_h264) as r:
        assert r.meta.backend == "decord"
        monkeypatch.setattr(backends.DecordBackend, "read", broken)
        assert [read_code(f) for f in r.get_batch([260, 5])] == [260, 5]
        assert r.meta.backend == "pyav"
    with VideoReader(long_gop_h264, backend="decord") as r:  # an explicit choice is not overridden
        with pytest.raises(VideoError, match="simulated"):
            r[3]


def test_natural_key_orders_numbers_numerically():
    from core_model.video import natural_key

    rng = np.random.default_rng(0)
    for prefix in ("", "img_", "Frame "):
        for _ in range(20):
            numbers = rng.choice(10**6, size=int(rng.integers(1, 30)), replace=False).tolist()
            names = [f"{prefix}{n}.tif" for n in numbers]
            assert sorted(names, key=natural_key) == [f"{prefix}{n}.tif" for n in sorted(numbers)]
    assert sorted(["b2.png", "B10.png", "a10.png", "a9.png"], key=natural_key) == [
        "a9.png",
        "a10.png",
        "b2.png",
        "B10.png",
    ]


def test_pyav_stays_exact_when_a_seek_lands_on_an_earlier_keyframe(tmp_path, monkeypatch):
    """Demuxers may seek by dts or to an earlier keyframe than asked; frames must still be identified exactly,
    also in AVI where frames are counted rather than matched by timestamp."""
    from core_model.video.backends import PyAVBackend

    def early_seek(self, key_index):
        kf = self._probe.keyframes
        earlier = int(kf[max(int(np.searchsorted(kf, key_index)) - 1, 0)])
        ts = int(self._probe.pts[earlier]) if earlier > 0 else 0
        self._container.seek(ts, stream=self._stream, backward=True)
        self._frames = self._decode_indexed(key_index)  # told the keyframe it asked for, not where it landed
        self._last = -1

    monkeypatch.setattr(PyAVBackend, "_seek", early_seek)
    idx = np.random.default_rng(5).integers(0, 120, 25).tolist()
    for name in ("clip.avi", "clip.mp4"):
        p = write_video(tmp_path / name, (code_frame(i) for i in range(120)), fps=30, bframes=3, gop=30)
        with VideoReader(p, backend="pyav") as r:
            assert [read_code(r[i]) for i in idx] == idx


def test_reopening_a_file_reuses_its_index_until_the_file_changes(tmp_path, monkeypatch):
    """Opening a video demuxes the whole file (seconds for an hour of HD); going back to it must not do that again,
    but a file rewritten since must be indexed afresh."""
    from core_model.video import probe as probe_mod

    calls = []
    real = probe_mod._probe_file
    monkeypatch.setattr(probe_mod, "_probe_file", lambda p, size: calls.append(p) or real(p, size))
    p = write_video(tmp_path / "v.mp4", (code_frame(i) for i in range(20)), fps=25, codec="libx264", gop=10)
    for _ in range(3):
        with VideoReader(p, backend="pyav") as r:
            assert len(r) == 20 and read_code(r[13]) == 13
    assert len(calls) == 1
    write_video(p, (code_frame(i) for i in range(30)), fps=25, codec="libx264", gop=10)  # rewritten, longer
    with VideoReader(p, backend="pyav") as r:
        assert len(r) == 30 and read_code(r[27]) == 27
    assert len(calls) == 2
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # cut short: the stale index must not hide it
    with pytest.raises(VideoError, match="v.mp4"):
        VideoReader(p, backend="pyav")


def test_a_files_index_kept_on_disk_serves_a_new_process_until_the_file_changes(tmp_path, monkeypatch):
    """The player opening a library video in a later session reads the file's index from the probe cache instead
    of demuxing the whole file again (0.5 s of CPU for 30 minutes of 1080p); a rewritten file, a damaged entry or a
    rotated video's rotation are never taken wrongly from it."""
    from core_model.video import probe as probe_mod

    calls = []
    real = probe_mod._probe_file
    monkeypatch.setattr(probe_mod, "_probe_file", lambda p, size: calls.append(p) or real(p, size))
    monkeypatch.setattr(probe_mod, "_disk_cache", None)
    cache = tmp_path / "probes"
    probe_mod.set_probe_cache(cache)
    p = write_video(tmp_path / "v.mp4", (code_frame(i) for i in range(40)), fps=25, codec="libx264", gop=10)
    with VideoReader(p, backend="pyav") as r:
        first = (r.meta, r.keyframe_indices().tolist(), r.timestamps.tolist())
    assert len(calls) == 1 and len(list(cache.glob("*.npz"))) == 1
    monkeypatch.setattr(probe_mod, "_MEMO", type(probe_mod._MEMO)())  # a new process: nothing in memory
    with VideoReader(p, backend="pyav") as r:
        assert (r.meta, r.keyframe_indices().tolist(), r.timestamps.tolist()) == first
        assert [read_code(r[i]) for i in (0, 13, 39)] == [0, 13, 39]
    assert len(calls) == 1  # read back, not probed
    write_video(p, (code_frame(i) for i in range(30)), fps=25, codec="libx264", gop=10)  # rewritten
    monkeypatch.setattr(probe_mod, "_MEMO", type(probe_mod._MEMO)())
    with VideoReader(p, backend="pyav") as r:
        assert len(r) == 30 and read_code(r[27]) == 27
    assert len(calls) == 2
    for entry in cache.glob("*.npz"):  # damaged entries (a crash, a full disk): probed again, no error
        entry.write_bytes(b"PK\x03\x04 not a real archive")
    monkeypatch.setattr(probe_mod, "_MEMO", type(probe_mod._MEMO)())
    with VideoReader(p, backend="pyav") as r:
        assert len(r) == 30 and read_code(r[5]) == 5
    assert len(calls) == 3
    probe_mod.set_probe_cache(None)


def test_the_probe_cache_keeps_a_rotated_videos_rotation(tmp_path, monkeypatch):
    from core_model.video import probe as probe_mod

    monkeypatch.setattr(probe_mod, "_disk_cache", None)
    probe_mod.set_probe_cache(tmp_path / "probes")
    p = _write_rotated(tmp_path / "rot.mp4")
    VideoReader(p, backend="pyav").close()
    monkeypatch.setattr(probe_mod, "_MEMO", type(probe_mod._MEMO)())
    monkeypatch.setattr(probe_mod, "_probe_file", lambda *a: pytest.fail("probed again"))
    with VideoReader(p, backend="pyav") as r:
        assert r.meta.rotation == 90 and (r.meta.width, r.meta.height) == (48, 64)
        assert r[2].shape == (64, 48, 3) and r[2][-8:, :8, 0].mean() > 200  # upright, as when probed
    probe_mod.set_probe_cache(None)
