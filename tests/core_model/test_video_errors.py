"""Bad input never crashes or hangs: each case raises VideoError naming the file and the reason."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core_model.video import VideoError, VideoReader, write_video


def _frames(n=30, size=64):
    for i in range(n):
        f = np.full((size, size, 3), 20 + (3 * i) % 200, np.uint8)
        f[: size // 2, : size // 3] = 255 - (3 * i) % 200
        yield f


@pytest.fixture()
def good_mp4(tmp_path):
    return write_video(tmp_path / "good.mp4", _frames(), fps=30)


def _expect_error(path, reason_part):
    with pytest.raises(VideoError) as e:
        VideoReader(path)
    assert str(path) in str(e.value), str(e.value)
    assert reason_part in e.value.reason, e.value.reason
    return e.value


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.mp4", "not found")


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.mp4"
    p.touch()
    _expect_error(p, "empty")


def test_not_a_video(tmp_path):
    p = tmp_path / "report.mp4"
    p.write_text("patient notes, definitely not a video\n" * 50)
    _expect_error(p, "not a readable video")
    p = tmp_path / "noise.mkv"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="noise.mkv"):
        VideoReader(p)


def test_image_file_is_not_a_video(tmp_path):
    import cv2

    p = tmp_path / "still.png"
    cv2.imwrite(str(p), np.zeros((16, 16, 3), np.uint8))
    # a single PNG opens as a 1-frame "video" in FFmpeg; that is fine, but it must not crash
    with VideoReader(p) as r:
        assert len(r) == 1 and r[0].shape == (16, 16, 3)


def test_truncated_mp4(good_mp4):
    data = good_mp4.read_bytes()
    p = good_mp4.with_name("cut.mp4")
    p.write_bytes(data[: len(data) // 2])  # moov index at the end is lost
    _expect_error(p, "not a readable video")


def test_truncated_faststart_mp4(tmp_path):
    # index at the front, frame data cut off: every listed frame must be inside the file
    import av

    src = tmp_path / "fs.mp4"
    with av.open(str(src), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for f in _frames(60):
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    data = src.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    p = tmp_path / "fs_cut.mp4"
    p.write_bytes(data[: int(len(data) * 0.7)])
    _expect_error(p, "truncated")


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_truncated_matroska(tmp_path, suffix):
    codec = "libvpx-vp9" if suffix == ".webm" else None
    src = write_video(tmp_path / f"full{suffix}", _frames(60), codec=codec)
    data = src.read_bytes()
    p = tmp_path / f"cut{suffix}"
    p.write_bytes(data[: int(len(data) * 0.6)])
    _expect_error(p, "truncated")


def test_folder_with_mixed_sizes(tmp_path):
    import cv2

    for i in range(5):
        size = (32, 32) if i != 3 else (32, 48)
        cv2.imwrite(str(tmp_path / f"{i + 1}.jpg"), np.zeros((*size, 3), np.uint8))
    err = _expect_error(tmp_path, "mixed frame sizes")
    assert "4.jpg" in err.reason


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    _expect_error(tmp_path, "no JPEG/PNG/TIFF")


def test_folder_with_a_corrupt_image(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VideoError) as e:
        VideoReader(tmp_path)
    assert "1.png" in str(e.value)


def test_audio_only_file(tmp_path):
    import av

    p = tmp_path / "sound.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("aac", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for _ in range(4):
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    _expect_error(p, "no video stream")


def test_garbage_does_not_crash_the_process(tmp_path):
    """decord aborts on some garbage; the reader probes with PyAV first, so a child process exits cleanly."""
    rng = np.random.default_rng(1)
    bad = []
    for i, head in enumerate([b"\x00\x00\x00\x18ftypmp42", b"\x1aE\xdf\xa3", b"RIFF\x00\x00\x00\x00AVI "]):
        p = tmp_path / f"bad{i}{['.mp4', '.mkv', '.avi'][i]}"
        p.write_bytes(head + rng.integers(0, 256, 50000, dtype=np.uint8).tobytes())
        bad.append(str(p))
    code = textwrap.dedent(
        f"""
        from core_model.video import VideoReader, VideoError
        for p in {bad!r}:
            try:
                r = VideoReader(p)
                r.get_batch(range(len(r)))
            except VideoError as e:
                print("ERR", e)
        print("DONE")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DONE" in out.stdout
    assert out.stdout.count("ERR") == 3, out.stdout


def test_write_video_errors_leave_no_file(tmp_path):
    p = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="even"):
        write_video(p, [np.zeros((15, 16, 3), np.uint8)])
    with pytest.raises(VideoError, match="frame 2 is"):
        write_video(p, [np.zeros((16, 16, 3), np.uint8)] * 2 + [np.zeros((32, 16, 3), np.uint8)])
    with pytest.raises(VideoError, match="no frames"):
        write_video(p, [])
    with pytest.raises(VideoError, match="uint8"):
        write_video(p, [np.zeros((16, 16), np.float32)])
    with pytest.raises(VideoError, match="folder does not exist"):
        write_video(tmp_path / "missing" / "x.mp4", [np.zeros((16, 16, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []
