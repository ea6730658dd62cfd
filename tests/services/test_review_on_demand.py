"""The review session reads the model's suggestions around the frame on screen (not a procedure's whole output at
once), and what it holds for each frame is exactly what a whole-video read gives; bulk accept and the blind-pass
comparison still see the whole range / video."""

from __future__ import annotations

import numpy as np
import pytest

from endoreview.services.editing import EditingService
from endoreview.services.review_commands import AcceptLabels
from endoreview.services.review_session import (
    OPEN_WINDOW,
    SUGGESTION_MARGIN,
    SUGGESTION_WINDOW,
    ReviewSession,
)
from endoreview.store.records import FramePrediction, NewLabel
from tests.store.make_db_version import rle

N = 1500


@pytest.fixture
def video(store):
    ls = store.create_label_set("set", [{"name": "polyp", "tasks": ["segment", "mask", "box"]}])
    p = store.create_project("P", ls.id)
    v = store.add_video(
        p.id, path="/v/a.mp4", path_is_relative=False, content_hash="p1:a", size_bytes=10,
        frame_count=N, fps=30.0, width=48, height=32,
    )  # fmt: skip
    run = store.start_prediction_run(v.id, None)
    rng = np.random.default_rng(0)
    preds = []
    for f in range(N):
        boxes = tuple(
            {"label": "polyp", "score": float(s), "bbox": [1.0, 1.0, 5.0 + k, 6.0]}
            for k, s in enumerate(rng.uniform(0.1, 1.0, 20))
        )
        preds.append(
            FramePrediction(f, {"abnormal": 0.8}, ({"label": "polyp", "score": 0.9, "rle": rle()},), boxes)
        )
    store.add_frame_predictions(run.id, preds)
    store.finish_prediction_run(run.id)
    store.add_labels([NewLabel(v.id, "box", "polyp", frame=1200, bbox=(2, 2, 9, 9))])  # the reviewer's own
    return v


def settle(s: ReviewSession) -> None:
    """Every queued action and read (and what they queued) has been delivered (deliver = call now)."""
    for _ in range(3):
        s.writer._pool.submit(lambda: None).result()


def test_the_session_holds_a_window_of_suggestions_equal_to_the_whole_video_read(store, video):
    whole: dict[int, list] = {}
    for x in store.labels_for_video(video.id, kinds=["mask", "box"]):  # the old full load
        whole.setdefault(x.frame, []).append(x)
    s = ReviewSession(lambda: EditingService(store))
    try:
        s.open(video.id, 48, 32, N)
        settle(s)
        # opening reads the margin around the first frame only (light while the video opens) ...
        assert s.loaded and s.ranges == {"focus": (0, OPEN_WINDOW)}
        held = {f for f, labs in s.frames.items() if any(x.id < 0 for x in labs)}
        assert held == set(range(OPEN_WINDOW))  # not 1,500 frames x 21 suggestions
        s.set_focus(SUGGESTION_MARGIN)
        settle(s)
        assert s.ranges == {"focus": (0, OPEN_WINDOW)}  # still within the margin: nothing read
        # ... and the full window once the reviewer moves on
        s.set_focus(SUGGESTION_MARGIN + 1)
        settle(s)
        assert s.ranges == {"focus": (0, SUGGESTION_WINDOW)}
        held = {f for f, labs in s.frames.items() if any(x.id < 0 for x in labs)}
        assert held == set(range(SUGGESTION_WINDOW))
        assert [x.id for x in s.labels_at(1200)] == [x.id for x in whole[1200] if x.id > 0]  # own labels: all
        for focus in (700, N - 1, 3):
            s.set_focus(focus)
            settle(s)
            a, b = s.ranges["focus"]
            assert a <= focus < b and b - a <= SUGGESTION_WINDOW
            for f in range(a, b):
                assert s.labels_at(f) == whole[f], f
            outside = [f for f, labs in s.frames.items() if not a <= f < b and any(x.id < 0 for x in labs)]
            assert outside == []  # what was held before is let go
        # a fast scrub across the video asks for one read at a time and ends holding the frame it stopped on
        reads = []
        submit = s.writer.submit
        s.writer.submit = lambda name, *a, **k: (reads.append(name), submit(name, *a, **k))[-1]
        for f in range(0, N, 25):
            s.set_focus(f)
        settle(s)
        s.writer.submit = submit
        assert 1 <= len(reads) <= 3, reads
        assert s.covers(N - 25, N - 24) and [x.id for x in s.labels_at(N - 25)] == [
            x.id for x in whole[N - 25]
        ]
        # an accept on the frame on screen takes the suggestion the reviewer sees; the frame reads back
        s.set_focus(1200)
        settle(s)
        sug = s.open_suggestions_at(1200)[0]
        s.execute(AcceptLabels((sug,), (1200,)))
        settle(s)
        assert sug.id not in {x.id for x in s.labels_at(1200)}
        assert any(x.state == "accepted" and x.bbox == sug.bbox for x in s.labels_at(1200))
        # bulk accept In-Out far from the playhead reads that range first, then takes what is visible there
        s.bulk_threshold = 0.0
        s.mark_in, s.mark_out = 300, 340
        s.bulk_accept(10)
        settle(s)
        left = [x for x in store.labels_for_video(video.id, frames=(300, 340)) if x.state == "suggested"]
        visible = [x for x in whole_range(whole, 300, 340) if (x.score or 1.0) >= s.view.min_score]
        assert len(left) == 21 * 40 - len(visible)
        assert f"the model {N}" in s.compare_with_model()  # every frame with output counts, held or not
    finally:
        s.writer.shutdown()


def whole_range(whole: dict[int, list], a: int, b: int) -> list:
    return [x for f in range(a, b) for x in whole[f]]


def test_an_accept_or_reject_is_on_screen_before_it_is_saved_and_a_refused_one_shows_what_is_stored(
    store, video, monkeypatch
):
    """A / R redraw at once (issue 23: on screen in <= 50 ms while a job's batch commits hold the database); the
    saved labels then replace what was shown, and an action the store refuses leaves what is really stored."""
    deliveries: list = []  # the GUI thread's queue: saved results arrive only when the test lets them
    s = ReviewSession(lambda: EditingService(store), deliveries.append)
    events: list = []
    s.subscribe(lambda kind, payload: events.append(kind))

    def deliver() -> None:
        for _ in range(3):
            s.writer._pool.submit(lambda: None).result()
            while deliveries:
                deliveries.pop(0)()

    try:
        s.open(video.id, 48, 32, N)
        deliver()
        s.view.min_score = 0.0
        masks_before = len(s.overlay_content(5)[0])
        events.clear()
        s.review("accept", 5)  # the mask and the boxes on frame 5 (nothing under a cursor: all visible here)
        assert events and events[0] == "labels"  # drawn now, before the writer even starts
        assert s.overlay_content(5) == ([], [])  # no longer an open suggestion on screen
        assert {x.state for x in s.labels_at(5)} == {"accepted"}
        assert len([x for x in s.human_masks_at(5)]) == masks_before
        deliver()
        stored = store.labels_for_video(video.id, frames=(5, 6))
        assert {x.state for x in stored} == {"accepted"} and s.labels_at(5) == stored
        # a queued read of the neighbourhood delivered after the press does not bring the old state back
        s.set_focus(900)
        s.review("reject", 6)
        deliver()
        assert {x.state for x in s.labels_at(6)} == {"rejected"}
        # refused by the store (here: it fails): what is stored comes back on screen
        monkeypatch.setattr(EditingService, "accept", lambda self, labels: 1 / 0)
        s.review("accept", 905)  # in the window read around frame 900
        assert {x.state for x in s.labels_at(905)} == {"accepted"}
        deliver()
        assert {x.state for x in s.labels_at(905)} == {"suggested"}
        assert {x.state for x in store.labels_for_video(video.id, frames=(905, 906))} == {"suggested"}
    finally:
        s.writer.shutdown()


def test_a_long_bulk_range_is_read_when_accepted_not_to_count_it_and_let_go_after(store, video, monkeypatch):
    """The panel's count of what Shift+A takes read the whole range: for a procedure-long segment ~340,000
    suggestions (seconds of CPU, and a heap every garbage collection walks: GUI stalls of 0.2-0.8 s)."""
    import endoreview.services.review_session as rs

    monkeypatch.setattr(rs, "BULK_PREVIEW_FRAMES", 100)
    s = ReviewSession(lambda: EditingService(store))
    try:
        s.open(video.id, 48, 32, N)
        settle(s)
        s.bulk_threshold = 0.0
        s.mark_in, s.mark_out = 10, 50  # short: counted for the panel (the window read at open holds it)
        rng, counted = s.bulk_preview(10)
        assert rng == (10, 50) and counted is not None and len(counted[0]) > 0
        s.mark_in, s.mark_out = 300, 700  # long and not held: the panel gets no count, nothing is read
        reads = []
        submit = s.writer.submit
        s.writer.submit = lambda name, *a, **k: (reads.append(name), submit(name, *a, **k))[-1]
        assert s.bulk_preview(10) == ((300, 700), None)
        settle(s)
        assert reads == [] and "bulk" not in s.ranges
        s.writer.submit = submit
        messages: list[str] = []
        s.subscribe(lambda kind, payload: messages.append(payload) if kind == rs.Change.MESSAGE else None)
        s.bulk_accept(10)  # pressing Shift+A reads the range and accepts what is visible there
        settle(s)
        settle(s)
        assert any("Accepted" in m for m in messages), messages
        left = [x for x in store.labels_for_video(video.id, frames=(300, 700)) if x.state == "suggested"]
        accepted = [x for x in store.labels_for_video(video.id, frames=(300, 700)) if x.state == "accepted"]
        assert accepted and len(left) + len(accepted) == 21 * 400
        held = {f for f, labs in s.frames.items() if any(x.id < 0 for x in labs)}
        a, b = s.ranges["focus"]
        assert "bulk" not in s.ranges and held <= set(range(a, b))  # the 400 frames are let go
    finally:
        s.writer.shutdown()
