"""The player: frame-exact seeking, stepping, playback by timestamps, overlays and their toggles."""

from __future__ import annotations

import numpy as np
import pytest

from endoreview import RESEARCH_NOTICE
from endoreview.media.cache import FrameCache
from endoreview.media.proxy import ProxyReader, build_proxy
from endoreview.ui.player.controller import PlayerController, VideoSource
from endoreview.ui.player.widget import PlayerWidget, parse_time
from endoreview.ui.tracks import PredictionTrack
from tests.ui.helpers import read_index


def _source(path, proxy=None):
    from core_model.video import VideoReader

    return VideoSource(
        key=1,
        path=str(path),
        frame_count=90,
        fps=30.0,
        width=320,
        height=240,
        open_original=lambda: VideoReader(path),
        open_proxy=(lambda: ProxyReader(proxy.path, proxy.fps)) if proxy else None,
    )


@pytest.fixture
def player(qtbot, strict_guard, pg_config):
    ctl = PlayerController(FrameCache(64 * 1024 * 1024))
    w = PlayerWidget(ctl)
    qtbot.addWidget(w)
    w.resize(800, 600)
    w.show()
    yield ctl, w
    ctl.close()


def shown_index(w: PlayerWidget) -> int:
    return read_index(np.asarray(w.view.image.image))


def test_seek_shows_the_exact_frame_at_full_resolution(qtbot, player, indexed_video):
    ctl, w = player
    ctl.open(_source(indexed_video))
    for target in (37, 3, 88, 0, 61):
        ctl.seek(target)
        qtbot.waitUntil(lambda t=target: ctl.shown == (t, True), timeout=5000)
        assert shown_index(w) == target
    assert "frame 62 / 90" in w.time_label.text()
    qtbot.waitUntil(lambda: w.painted_frames and w.painted_frames[-1][0] == 61, timeout=3000)


def test_step_and_jump_keys_of_the_transport(qtbot, player, indexed_video):
    ctl, w = player
    ctl.open(_source(indexed_video))
    qtbot.waitUntil(lambda: ctl.shown == (0, True), timeout=5000)
    w.btn_fwd10.click()
    w.btn_fwd.click()
    qtbot.waitUntil(lambda: ctl.shown and ctl.shown[0] == 11, timeout=5000)
    assert shown_index(w) == 11
    w.btn_back.click()
    qtbot.waitUntil(lambda: ctl.shown and ctl.shown[0] == 10, timeout=5000)
    w.btn_end.click()
    qtbot.waitUntil(lambda: ctl.shown and ctl.shown[0] == 89, timeout=5000)
    w.goto.setFocus()
    w.goto.setText("0:01.5")  # 1.5 s at 30 fps
    w.goto.returnPressed.emit()
    qtbot.waitUntil(lambda: ctl.shown and ctl.shown[0] == 45, timeout=5000)
    assert shown_index(w) == 45
    # after the jump the keys go to the frame (A accepts there), not into the box
    qtbot.waitUntil(lambda: w.view.hasFocus(), timeout=2000)
    w.goto.setText(
        "#12"
    )  # the frame the counter calls 12 (issue 22.8: go-to was 0-based, the counter 1-based)
    w.goto.returnPressed.emit()
    qtbot.waitUntil(lambda: ctl.shown and ctl.shown[0] == 11, timeout=5000)
    assert "frame 12 / 90" in w.time_label.text()
    assert (
        parse_time("#12", 30) == 11
        and parse_time("#1", 30) == 0
        and parse_time("1:00:00", 25) == 90000
        and parse_time("abc", 30) is None
    )


def test_scrubbing_uses_the_proxy_then_swaps_in_the_original(qtbot, player, indexed_video, tmp_path):
    import threading

    ctl, w = player
    out = []
    t = threading.Thread(target=lambda: out.append(build_proxy(indexed_video, tmp_path / "p.mp4")))
    t.start()
    t.join()
    ctl.open(_source(indexed_video, out[0]))
    ctl.seek(70)
    qtbot.waitUntil(lambda: ctl.shown is not None and ctl.shown[0] == 70, timeout=5000)
    assert shown_index(w) == 70
    qtbot.waitUntil(lambda: ctl.shown == (70, True), timeout=5000)  # refined once the playhead rests


def test_play_presents_frames_in_order_at_the_native_rate(qtbot, player, indexed_video):
    ctl, w = player
    ctl.open(_source(indexed_video))
    qtbot.waitUntil(lambda: ctl.shown == (0, True), timeout=5000)
    ctl.record_presented = True
    ctl.play()
    assert w.btn_play.toolTip().startswith("Play")
    qtbot.waitUntil(lambda: ctl.current >= 20, timeout=5000)
    ctl.pause()
    frames = [i for i, _ in ctl.presented]
    assert frames == sorted(frames) and len(set(frames)) >= 5
    times = [t for _, t in ctl.presented]
    span = times[-1] - times[0]
    assert span > 0 and (frames[-1] - frames[0]) / span < 30 * 1.5, "not faster than real time"
    paused_at = ctl.current
    qtbot.wait(200)
    assert ctl.current == paused_at and not ctl.playing
    ctl.set_speed(4.0)
    assert ctl.speed == 4.0 and w.speed.currentData() == 4.0
    ctl.set_speed(10)
    assert ctl.speed == 4.0
    ctl.seek(88)
    ctl.play()
    qtbot.waitUntil(lambda: not ctl.playing, timeout=5000)  # stops at the end
    assert ctl.current == 89


def test_overlays_toggle_and_threshold(qtbot, player, indexed_video):
    from pycocotools import mask as mask_utils

    ctl, w = player
    ctl.open(_source(indexed_video))
    m = np.zeros((240, 320), np.uint8, order="F")
    m[100:150, 100:180] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    track = PredictionTrack(90)
    for i in range(90):
        track.add(
            {
                "frame": i,
                "probs": {"normal": 0.2, "abnormal": 0.8},
                "masks": [{"label": "polyp", "score": 0.9, "rle": rle}],
                "boxes": [
                    {"label": "polyp", "score": 0.9, "bbox": [100, 100, 180, 150]},
                    {"label": "polyp", "score": 0.3, "bbox": [10, 10, 40, 40]},
                ],
            }
        )
    w.set_predictions(track, "abnormal (suggested)")
    ctl.seek(5)
    qtbot.waitUntil(lambda: ctl.shown == (5, True), timeout=5000)
    ov = w.view.overlay
    assert len(ov.visible_masks()) == 1 and len(ov.visible_boxes()) == 1  # the 0.3 box is under 0.5
    assert w.notice.isVisible() and w.notice.text() == RESEARCH_NOTICE
    assert "abnormal" in w.banner.text() and "80%" in w.banner.text()
    w.threshold.setValue(20)
    assert len(ov.visible_boxes()) == 2
    w.threshold.setValue(95)
    assert ov.visible_boxes() == [] and ov.visible_masks() == [] and "80%" not in w.banner.text()
    w.threshold.setValue(50)
    w.chk_masks.setChecked(False)
    w.chk_boxes.setChecked(False)
    assert ov.visible_masks() == [] and ov.visible_boxes() == []
    w.chk_banner.setChecked(False)
    assert "abnormal" not in w.banner.text()
    w.chk_masks.setChecked(True)
    img = w.view.grab().toImage()
    assert not img.isNull()
    ov.update()
    qtbot.wait(50)  # paint with a mask visible (outline contours from the RLE)
    assert ov._paths, "the mask outline was drawn"


def test_missing_file_is_reported_not_raised(qtbot, player, tmp_path):
    ctl, w = player
    errors = []
    ctl.sourceError.connect(errors.append)
    from core_model.video import VideoReader

    src = VideoSource(
        key=9,
        path=str(tmp_path / "gone.mp4"),
        frame_count=10,
        fps=30,
        width=64,
        height=64,
        open_original=lambda: VideoReader(tmp_path / "gone.mp4"),
    )
    ctl.open(src)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert "gone.mp4" in errors[0]


def test_opening_reads_only_the_first_frame_until_it_is_shown_at_full_resolution(
    qtbot, player, indexed_video, tmp_path
):
    """Read-ahead (60 proxy frames) waits until the original's first frame is on screen: decoded at open, it took a
    third of a second of CPU from that frame on a 2-core machine. Afterwards the player reads ahead as before."""
    import threading

    ctl, w = player
    out = []
    t = threading.Thread(target=lambda: out.append(build_proxy(indexed_video, tmp_path / "p.mp4")))
    t.start()
    t.join()
    proxy = out[0]
    decoded_when_full = []
    ctl.framePresented.connect(
        lambda i, f, full: full and not decoded_when_full and decoded_when_full.append(ctl._proxy.decoded)
    )
    ctl.open(_source(indexed_video, proxy))
    qtbot.waitUntil(lambda: ctl.shown == (0, True), timeout=5000)
    assert decoded_when_full and decoded_when_full[0] <= 1
    qtbot.waitUntil(lambda: ctl._proxy.decoded > 10, timeout=5000)  # then the read-ahead


def test_a_model_masks_outline_follows_it_within_a_pixel_with_a_fraction_of_the_corners():
    """A model's mask upsampled to 1080p has a staircase outline; the overlay strokes a simplified one (stroking every
    corner, antialiased, took ~13 ms per mask on the GUI thread for each new frame while playing)."""
    import cv2

    from core_model.contract import rle_encode
    from endoreview.ui.player.view import mask_outline

    small = np.zeros((56, 112), np.float32)  # the model's resolution
    cv2.ellipse(small, (50, 28), (30, 17), 20, 0, 360, 1.0, -1)
    mask = (cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.uint8)
    rle = rle_encode(mask)
    exact, drawn = mask_outline(rle, tolerance=0), mask_outline(rle)
    assert len(drawn) == len(exact) == 1
    assert len(drawn[0]) * 3 < len(exact[0])
    filled = np.zeros_like(mask)
    cv2.fillPoly(filled, [np.round(drawn[0]).astype(np.int32)], 1)
    inter, union = np.logical_and(filled, mask).sum(), np.logical_or(filled, mask).sum()
    assert inter / union > 0.99
