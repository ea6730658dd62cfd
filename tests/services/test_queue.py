"""The review queue ranks uncertain regions (entropy, margin, flicker, cross-task disagreement) across videos."""

from __future__ import annotations

import numpy as np

from endoreview.services.predictions import PredictionRecorder
from endoreview.services.projects import ProjectService
from endoreview.services.queue import ReviewQueue, signals, uncertain_regions


def test_signals_each_flag_their_kind_of_doubt():
    t = 30
    p = np.full((t, 2), np.nan)
    p[:, 1] = 0.05
    p[5:10, 1] = 0.5  # unsure: entropy and margin
    p[15:20, 1] = [0.05, 0.95, 0.05, 0.95, 0.05]  # confident but flickering
    p[:, 0] = 1 - p[:, 1]
    p[28:] = np.nan  # not predicted
    det = np.zeros(t)
    det[22:26] = 0.9  # boxes the classifier does not back: disagreement
    s = signals(p, ["normal", "abnormal"], det)
    assert s.entropy[7] > 0.99 and s.entropy[0] < 0.3 and s.margin[7] > 0.99 and s.margin[0] < 0.2
    assert s.flicker[17] > 0.8 and s.flicker[2] < 0.01
    assert s.disagreement[23] > 0.8 and s.disagreement[2] < 0.1
    assert s.entropy[29] == 0 and s.flicker[29] == 0
    items = uncertain_regions(s, 1, level=0.3, merge_gap=0)
    spans = {(it.start, it.end): it.reason for it in items}
    assert (5, 10) in spans and spans[(5, 10)] in ("entropy", "margin")
    assert any(a <= 16 and b >= 19 for a, b in spans)
    assert all(it.score >= 0.3 for it in items)


def _stream(path: str, n: int, unsure: range, level: float):
    for f in range(n):
        p = level if f in unsure else 0.05
        yield {"event": "frame", "video": path, "frame": f, "probs": {"normal": 1 - p, "abnormal": p}}
    yield {"event": "video_done", "video": path, "frames": n}


def test_queue_orders_videos_and_skips_reviewed_ones(store, tmp_path):
    project = ProjectService(store).default_project()
    vids = []
    for k, (unsure, level) in enumerate([(range(10, 14), 0.35), (range(2, 30), 0.5), (range(0), 0.5)]):
        v = store.add_video(
            project.id, path=str(tmp_path / f"{k}.mp4"), path_is_relative=False, content_hash=f"p1:q{k}",
            size_bytes=1, frame_count=40, fps=25.0, width=32, height=32,
        )  # fmt: skip
        PredictionRecorder(store, v.id, None).record(_stream(v.path, 40, unsure, level))
        vids.append(v)
    q = ReviewQueue(store, project.id)
    items = q.build()
    assert [(it.video_id, it.start, it.end) for it in items] == [(vids[1].id, 2, 30), (vids[0].id, 10, 14)]
    assert q.next_item() == items[0] and q.next_item() == items[1] and q.next_item() is None
    assert q.previous_item() == items[0]
    store.update_video(vids[1].id, None, review_status="reviewed")
    assert [it.video_id for it in q.build()] == [vids[0].id]
