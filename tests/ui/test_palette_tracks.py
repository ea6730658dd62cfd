"""Overlay colours stay readable on mucosa; prediction/label tracks and navigation targets."""

from __future__ import annotations

import numpy as np
import pytest

from endoreview.ui.palette import (
    CHIP,
    CHIP_TEXT,
    CLASS_COLOURS,
    MUCOSA_SAMPLES,
    STATE_COLOURS,
    colour_for,
    contrast_ratio,
    stroke_contrast,
)
from endoreview.ui.tracks import LabelTrack, PredictionTrack, disagreements, low_confidence_starts, next_after


def test_contrast_ratio_matches_wcag_reference_values():
    assert abs(contrast_ratio((0, 0, 0), (255, 255, 255)) - 21.0) < 1e-6
    assert abs(contrast_ratio((255, 0, 0), (255, 255, 255)) - 4.0) < 0.01
    assert contrast_ratio((120, 35, 35), (120, 35, 35)) == 1.0


def test_every_overlay_colour_is_readable_on_every_mucosa_colour():
    for core in CLASS_COLOURS:
        for mucosa in MUCOSA_SAMPLES:
            assert stroke_contrast(core, mucosa) >= 3.0, (core, mucosa)
    # the bright core alone carries on the darker half of mucosa, where a dark halo would vanish
    dark = [m for m in MUCOSA_SAMPLES if sum(m) < 350]
    for core in CLASS_COLOURS:
        assert min(contrast_ratio(core, m) for m in dark) >= 3.0, core
    assert contrast_ratio(CHIP, CHIP_TEXT) >= 4.5
    for col in STATE_COLOURS.values():
        assert contrast_ratio(col, (21, 21, 27)) >= 3.0  # timeline background


def test_class_colours_are_stable_and_distinct_for_known_classes():
    known = ("normal", "abnormal", "polyp")
    cols = [colour_for(c, known) for c in known]
    assert len(set(cols)) == 3
    assert colour_for("other") == colour_for("other")


def test_prediction_track_grows_with_streamed_frames():
    t = PredictionTrack(10)
    assert t.empty and t.frames_done == 0
    t.add(
        {
            "frame": 2,
            "probs": {"normal": 0.1, "abnormal": 0.9},
            "boxes": [{"label": "polyp", "score": 0.7, "bbox": [0, 0, 5, 5]}],
        }
    )
    t.add({"frame": 3, "probs": {"normal": 0.9, "abnormal": 0.1}})
    t.add({"frame": 99, "probs": {"normal": 1.0}})  # out of range: ignored
    assert t.classes == ["normal", "abnormal"] and t.frames_done == 2
    assert t.top_class(2) == ("abnormal", np.float32(0.9).item())
    assert t.det_score[2] == np.float32(0.7) and t.det_score[3] == 0 and np.isnan(t.det_score[0])
    assert t.positive_fraction("abnormal") == 0.5
    u = t.uncertainty()
    assert np.isnan(u[0]) and 0 < u[2] < 1


def test_disagreements_and_low_confidence_regions():
    pred = PredictionTrack(20)
    for i in range(20):
        p = 0.9 if 5 <= i < 10 else (0.5 if 14 <= i < 18 else 0.1)
        pred.add({"frame": i, "probs": {"polyp": p}})
    labels = LabelTrack.from_labels(
        20,
        [
            {
                "kind": "segment",
                "state": "accepted",
                "class_name": "polyp",
                "start_frame": 5,
                "end_frame": 8,
                "id": 1,
            },
            {
                "kind": "segment",
                "state": "rejected",
                "class_name": "polyp",
                "start_frame": 8,
                "end_frame": 12,
                "id": 2,
            },
        ],
    )
    assert labels.reviewed[5:12].all() and not labels.reviewed[:5].any()
    # frames 8, 9: model says polyp, the reviewer rejected it
    assert disagreements(pred, labels).tolist() == [8]
    assert low_confidence_starts(pred).tolist() == [14]
    assert (
        next_after(np.array([3, 8, 14]), 8) == 14 and next_after(np.array([3, 8, 14]), 8, forward=False) == 3
    )
    assert next_after(np.array([3]), 5) is None


def test_only_human_judgements_fill_the_reviewed_lane():
    """Propagated / interpolated masks are the tool's guesses until a reviewer edits them (then they are ``drawn``);
    a rejected suggestion is a judgement (the reviewer looked and said no)."""
    labels = LabelTrack.from_labels(
        6,
        [
            {"kind": "mask", "state": "manual", "origin": "drawn", "frame": 0},
            {"kind": "mask", "state": "manual", "origin": "propagated", "frame": 1},
            {"kind": "box", "state": "manual", "origin": "interpolated", "frame": 2},
            {"kind": "box", "state": "rejected", "origin": "predicted", "frame": 3},
            {"kind": "box", "state": "suggested", "origin": "predicted", "frame": 4},
            {"kind": "mask", "state": "edited", "origin": "predicted", "frame": 5},
        ],
    )
    assert labels.reviewed.tolist() == [True, False, False, True, False, True]


def test_rejected_predictions_leave_the_detection_lane(tmp_path):
    from endoreview.services.app import AppServices
    from endoreview.store.records import FramePrediction, NewLabel
    from endoreview.ui.backend import Backend
    from endoreview.ui.views import PlayerViews
    from tests.services.videos import make_video

    b = Backend(AppServices(f"sqlite:///{tmp_path / 'db.sqlite3'}", reviewer="t"))
    b.open()
    views = PlayerViews(b)
    video, _ = b.library.import_video(b.project.id, make_video(tmp_path / "v.mp4", n=6))
    run = b.store.start_prediction_run(video.id, None)
    box = {"label": "polyp", "score": 0.8, "bbox": [1, 1, 9, 9]}
    b.store.add_frame_predictions(
        run.id, [FramePrediction(f, {"polyp": 0.9}, boxes=(box,)) for f in range(4)]
    )
    video_call = NewLabel(
        video.id, "video_class", "normal", origin="predicted", state="suggested", score=0.58
    )
    b.store.finish_prediction_run(run.id, "finished", [video_call])
    tracks = views.tracks(video.id)
    assert tracks.predictions.det_score[:4].tolist() == pytest.approx([0.8] * 4)
    assert tracks.video_label == "normal 58% (suggested)"  # how sure the whole-video call is
    on_2 = [x for x in b.store.labels_for_video(video.id) if x.frame == 2]
    b.store.set_label_states([x.id for x in on_2], "rejected")
    assert views.tracks(video.id).predictions.det_score[:4].tolist() == pytest.approx([0.8, 0.8, 0.0, 0.8])
