"""Optical-flow mask propagation stops at user keyframes; box interpolation is linear between keyframes."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.contract import rle_decode, rle_encode
from endoreview.services.editing import EditingService
from endoreview.services.propagation import interpolate_boxes, propagate_mask, warp_mask
from endoreview.store.records import LabelOrigin, NewLabel
from tests.services.conftest import add_video

H, W, N = 64, 80, 12


def disk(cx: float, cy: float, r: float = 9) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def scene(n: int = N, start: float = 24, step: float = 2) -> np.ndarray:
    """A textured disk moving ``step`` px right per frame over a fixed textured background."""
    rng = np.random.default_rng(0)
    bg = rng.integers(60, 140, (H, W, 3), dtype=np.uint8)
    tex = rng.integers(150, 255, (H, W, 3), dtype=np.uint8)
    out = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        m = disk(start + step * i, 32).astype(bool)
        f = bg.copy()
        f[m] = np.roll(tex, int(step * i), axis=1)[m]
        out[i] = f
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture
def video(store, tmp_path):
    return add_video(store, tmp_path / "p.mp4", frame_count=N, width=W, height=H)


def test_warp_follows_motion():
    frames = scene(2)
    moved = warp_mask(frames[0], frames[1], disk(24, 32))
    assert iou(moved, disk(26, 32)) > iou(disk(24, 32), disk(26, 32)) and iou(moved, disk(26, 32)) > 0.8


def test_propagation_stops_at_keyframes_and_never_overwrites_them(store, video):
    frames = scene()
    svc = EditingService(store)
    svc.set_mask(video.id, 2, disk(28, 32))
    key = svc.set_mask(video.id, 8, disk(40, 32, 6))  # the reviewer's own (different) mask
    res = propagate_mask(svc, video.id, 2, lambda idx: frames[list(idx)], forward=True)
    assert res.frames == (3, 4, 5, 6, 7) and res.stopped_at == 8 and "keyframe 9" in res.reason
    for f in res.frames:
        (lab,) = svc.frame_labels(video.id, f)
        assert lab.origin == LabelOrigin.PROPAGATED
        assert iou(rle_decode(lab.rle).astype(bool), disk(24 + 2 * f, 32).astype(bool)) > 0.7
    assert [x.id for x in svc.frame_labels(video.id, 8)] == [key.id]
    assert np.array_equal(rle_decode(svc.frame_labels(video.id, 8)[0].rle), disk(40, 32, 6))
    back = propagate_mask(svc, video.id, 2, lambda idx: frames[list(idx)], forward=False)
    assert back.frames == (1, 0) and back.stopped_at is None
    # propagating again replaces the earlier propagated masks (not duplicates); the whole run is one undo step
    again = propagate_mask(svc, video.id, 2, lambda idx: frames[list(idx)], forward=True)
    assert again.frames == res.frames and len(svc.frame_labels(video.id, 5)) == 1
    assert svc.undo().startswith("Undo: Propagate mask forward from frame 3")
    assert len(svc.frame_labels(video.id, 5)) == 1  # the first propagation is back
    svc.undo()
    svc.undo()
    assert svc.frame_labels(video.id, 0) == []
    with pytest.raises(ValueError, match="frame 11 has no polyp mask"):
        propagate_mask(svc, video.id, 10, lambda idx: frames[list(idx)])


def test_box_interpolation_is_linear_between_keyframes(store, video):
    svc = EditingService(store)
    a = svc.add_box(video.id, 1, (10, 10, 20, 20))
    svc.add_box(video.id, 5, (30, 10, 40, 30), track_id=a.track_id)
    svc.add_box(video.id, 3, (0, 0, 5, 5), track_id=a.track_id + 1)  # another track is left alone
    filled = interpolate_boxes(svc, video.id, a.track_id)
    assert filled == [2, 3, 4]
    boxes = {x.frame: x for x in store.labels_for_video(video.id, kinds=["box"]) if x.track_id == a.track_id}
    assert boxes[3].bbox == (20.0, 10.0, 30.0, 25.0) and boxes[3].origin == "interpolated"
    assert boxes[2].bbox == (15.0, 10.0, 25.0, 22.5)
    # moving an interpolated box makes it a keyframe; interpolating again respects it
    svc.set_box(boxes[3], (22, 12, 32, 26))
    assert interpolate_boxes(svc, video.id, a.track_id) == [2, 4]
    boxes = {x.frame: x for x in store.labels_for_video(video.id, kinds=["box"]) if x.track_id == a.track_id}
    assert boxes[3].origin == "drawn" and boxes[2].bbox == (16.0, 11.0, 26.0, 23.0)
    assert len(boxes) == 5 and len(store.labels_for_video(video.id, kinds=["box"])) == 6
    store.add_labels([NewLabel(video.id, "mask", "polyp", frame=0, rle=rle_encode(disk(5, 5)))])


def test_propagation_stops_when_the_object_leaves_the_view(store, video):
    frames = scene(start=40, step=6)  # the polyp slides out of the right edge (x = 80) after frame 7
    svc = EditingService(store)
    svc.set_mask(video.id, 1, disk(46, 32))
    res = propagate_mask(svc, video.id, 1, lambda idx: frames[list(idx)], forward=True)
    assert res.frames and max(res.frames) <= 9 and "lost" in res.reason, res
