"""The correction tools' service: mask geometry, one undo stack over every action, keyframes, reviewing."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.contract import rle_decode, rle_encode
from endoreview.services.editing import (
    REJECT_REASONS,
    EditingService,
    fill_holes,
    fill_polygon,
    grow_shrink,
    is_keyframe,
    mask_box,
    paint_stroke,
)
from endoreview.services.predictions import PredictionRecorder
from endoreview.store.records import LabelOrigin, NewLabel
from tests.services.test_review import stream


def test_mask_geometry():
    m = paint_stroke(np.zeros((32, 48), np.uint8), [(10, 10), (30, 10)], radius=3)
    assert m[10, 10] and m[10, 30] and m[10, 20] and m[13, 20] and not m[15, 20] and not m[10, 35]
    erased = paint_stroke(m, [(20, 10)], radius=2, value=0)
    assert not erased[10, 20] and erased[10, 10]
    assert mask_box(m) == (7.0, 7.0, 34.0, 14.0)
    ring = fill_polygon(np.zeros((32, 48), np.uint8), [(5, 5), (25, 5), (25, 25), (5, 25)])
    ring[10:20, 10:20] = 0
    assert ring.sum() == 21 * 21 - 100 and fill_holes(ring).sum() == 21 * 21
    assert grow_shrink(ring, 2).sum() > ring.sum() > grow_shrink(ring, -2).sum() > 0
    assert np.array_equal(rle_decode(rle_encode(ring)), ring)
    with pytest.raises(ValueError, match="at least 3 points"):
        fill_polygon(ring, [(1, 1), (2, 2)])


def test_strokes_are_one_undo_step_each_and_undo_is_audited(store, video):
    svc = EditingService(store)
    m1 = paint_stroke(np.zeros((32, 48), np.uint8), [(10, 10), (20, 10)], 3)
    lab = svc.set_mask(video.id, 5, m1)
    assert (lab.state, lab.origin) == ("manual", "drawn") and is_keyframe(lab)
    m2 = paint_stroke(m1, [(10, 20), (20, 20)], 3)
    svc.set_mask(video.id, 5, m2)
    assert np.array_equal(svc.frame_mask(video.id, 5, "polyp", (32, 48)), m2)
    assert svc.undo() == "Undo: Brush stroke"
    assert np.array_equal(svc.frame_mask(video.id, 5, "polyp", (32, 48)), m1)
    assert svc.redo() == "Redo: Brush stroke"
    assert np.array_equal(svc.frame_mask(video.id, 5, "polyp", (32, 48)), m2)
    svc.set_mask(video.id, 5, np.zeros_like(m2), summary="Erase")
    assert svc.frame_labels(video.id, 5) == []
    svc.undo()
    assert len(svc.frame_labels(video.id, 5)) == 1
    copied = svc.copy_mask(video.id, 5, 6)
    assert np.array_equal(rle_decode(copied.rle), m2)
    with pytest.raises(ValueError, match="frame 8 has no polyp mask"):
        svc.copy_mask(video.id, 7, 8)
    summaries = [c.summary for c in store.changes_since(0)]
    assert summaries.count("Undo: Brush stroke") == 1 and "Redo: Brush stroke" in summaries
    assert "Undo: Erase" in summaries


def test_hand_edit_of_a_propagated_mask_makes_it_a_keyframe(store, video):
    svc = EditingService(store)
    m = paint_stroke(np.zeros((32, 48), np.uint8), [(10, 10)], 4)
    store.add_labels(
        [NewLabel(video.id, "mask", "polyp", origin=LabelOrigin.PROPAGATED, frame=3, rle=rle_encode(m))]
    )
    (prop,) = svc.frame_labels(video.id, 3)
    assert not is_keyframe(prop)
    edited = svc.set_mask(video.id, 3, grow_shrink(m, 1))
    assert edited.origin == "drawn" and is_keyframe(edited)
    assert [x.id for x in svc.frame_labels(video.id, 3)] == [edited.id]


def test_boxes_segments_and_review_actions(store, video):
    PredictionRecorder(store, video.id, None).record(stream(video.path))
    svc = EditingService(store)
    # a stroke on a suggested mask edits it (keeps the model link), accept / reject under a point
    sug = svc.suggestions_at(video.id, 12, point=(14, 10))
    assert {x.kind for x in sug} == {"mask", "box"}
    mask = next(x for x in sug if x.kind == "mask")
    edited = svc.set_mask(video.id, 12, grow_shrink(rle_decode(mask.rle), 1))
    assert (edited.state, edited.origin, edited.score, edited.run_id) == (
        "edited",
        "predicted",
        mask.score,
        mask.run_id,
    )
    assert [x.id for x in svc.frame_labels(video.id, 12) if x.kind == "mask"] == [edited.id]
    box = next(x for x in svc.suggestions_at(video.id, 13) if x.kind == "box")
    (promoted,) = svc.promote([box])
    assert promoted.state == "accepted"
    rejected = svc.reject(svc.suggestions_at(video.id, 14), REJECT_REASONS[0])
    assert {(x.state, x.reason) for x in rejected} == {("rejected", REJECT_REASONS[0])}
    # boxes: draw, move, class, delete (a model suggestion is rejected, not deleted)
    drawn = svc.add_box(video.id, 30, (2, 2, 10, 10))
    moved = svc.set_box(drawn, (4, 4, 12, 12))
    assert moved.bbox == (4.0, 4.0, 12.0, 12.0) and moved.track_id == drawn.track_id
    assert svc.set_class(moved, "adenoma").class_name == "adenoma"
    svc.delete([svc.frame_labels(video.id, 30)[0]])
    assert svc.frame_labels(video.id, 30) == []
    svc.delete([x for x in svc.frame_labels(video.id, 15) if x.kind == "box"])
    assert [x.state for x in svc.frame_labels(video.id, 15) if x.kind == "box"] == ["rejected"]
    # segments: mark, move an edge, split, merge, delete
    seg = svc.add_segment(video.id, 20, 4, "polyp")
    assert (seg.start_frame, seg.end_frame) == (4, 20)
    seg = svc.set_segment_bounds(seg, 2, 20)
    a, b = svc.split_segment(seg, 8)
    assert [(a.start_frame, a.end_frame), (b.start_frame, b.end_frame)] == [(2, 8), (8, 20)]
    merged = svc.merge_segments([b, a])
    assert (merged.start_frame, merged.end_frame) == (2, 20)
    assert svc.undo() == "Undo: Merge 2 segments"
    assert len([x for x in svc.segments_at(video.id, 5) if x.state == "manual"]) == 1
    # bulk accept over a range above a score, review status; everything undoable through the one stack
    n = svc.bulk_accept(video.id, frames=(16, 25), min_score=0.5)
    assert n > 0 and all(x.state != "suggested" for f in range(16, 25) for x in svc.frame_labels(video.id, f))
    svc.set_review_status(video.id, "in_review")
    svc.set_review_status(video.id, "reviewed")
    assert store.get_video(video.id).review_status == "reviewed"
    assert svc.undo() == "Undo: Mark video reviewed"
    assert store.get_video(video.id).review_status == "in_review"
    assert svc.undo() == "Undo: Mark video in review"  # two undos of one video row in a row
    assert store.get_video(video.id).review_status == "unreviewed"
    assert svc.redo() == "Redo: Mark video in review" and svc.redo() == "Redo: Mark video reviewed"
    assert store.get_video(video.id).review_status == "reviewed"
    svc.undo()
    svc.undo()
    svc.undo()
    assert any(x.state == "suggested" for x in svc.frame_labels(video.id, 20))
    vc = svc.set_video_class(video.id, "normal")
    assert svc.set_video_class(video.id, "abnormal").class_name == "abnormal"
    assert vc.id not in {x.id for x in store.labels_for_video(video.id, kinds=["video_class"])}
