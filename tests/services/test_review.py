"""Reviewing: accept/edit/reject/create with undo/redo, predictions recorded from a stream, the manifest."""

from __future__ import annotations

from endoreview.services.editing import EditingService
from endoreview.services.manifest import snapshot_manifest
from endoreview.services.predictions import PredictionRecorder, segments_from_probs
from endoreview.store.records import LabelKind
from tests.services.simple_predictor import progress_event
from tests.store.make_db_version import rle


def stream(video_path: str, n: int = 40, polyp: range = range(10, 25)):
    """Predictor events as ``core_model.inference.Predictor.predict_video`` streams them."""
    yield {"event": "video_start", "video": video_path, "num_frames": n, "frames": n}
    for f in range(n):
        p = 0.9 if f in polyp else 0.1
        ev = {"event": "frame", "video": video_path, "frame": f, "probs": {"normal": 1 - p, "abnormal": p}}
        ev["masks"] = [{"label": "polyp", "score": p, "rle": rle(x=f % 30)}] if f in polyp else []
        ev["boxes"] = (
            [{"label": "polyp", "score": p, "bbox": [f % 30, 5, f % 30 + 8, 15]}] if f in polyp else []
        )
        yield ev
        if f % 10 == 9:
            yield progress_event(video_path, f + 1, n)
    yield {"event": "video_done", "video": video_path, "frames": n, "probs": {"normal": 0.3, "abnormal": 0.7}}


def test_segments_from_probs():
    probs = {f: {"normal": 0.5, "abnormal": 0.9 if 3 <= f < 7 or f == 9 else 0.1} for f in range(10)}
    assert segments_from_probs(probs, 10) == [("abnormal", 3, 7), ("abnormal", 9, 10)]
    assert segments_from_probs(probs, 10, min_segment=2) == [("abnormal", 3, 7)]


def test_prediction_stream_is_recorded_with_run_level_suggestions(store, video):
    mv = store.add_model_version("demo", architecture="endofm_tiny", files_dir="/m")
    res = PredictionRecorder(store, video.id, mv.id, batch_frames=16).record(stream(video.path))
    assert (res.state, res.frames, res.labels) == ("finished", 40, 15 + 15 + 1 + 1)
    t = store.timeline_summary(video.id)
    assert t.runs("mask", "suggested") == [(10, 25)] and t.runs("box", "suggested") == [(10, 25)]
    seg = [x for x in t.segments if x.kind == LabelKind.SEGMENT]
    assert [(x.class_name, x.start_frame, x.end_frame, x.state, x.model_version_id) for x in seg] == [
        ("polyp", 10, 25, "suggested", mv.id)
    ]
    vc = [x for x in t.segments if x.kind == LabelKind.VIDEO_CLASS]
    assert [(x.class_name, x.score) for x in vc] == [("abnormal", 0.7)]
    assert store.list_prediction_runs(video.id)[0].state == "finished"


def test_a_stream_that_errors_or_is_cancelled_keeps_what_arrived(store, video):
    events = list(stream(video.path))[:25] + [
        {"event": "cancelled", "video": video.path, "done": 20, "total": 40}
    ]
    res = PredictionRecorder(store, video.id, None, batch_frames=8).record(events)
    assert res.state == "cancelled" and res.frames > 0
    assert store.list_prediction_runs(video.id)[0].state == "cancelled"
    assert len(store.frame_probs(res.run.id)) == res.frames
    res2 = PredictionRecorder(store, video.id, None).record(
        [{"event": "error", "video": "x", "message": "truncated"}]
    )
    assert (res2.state, res2.message) == ("failed", "truncated")


def test_review_actions_with_undo_and_redo(store, video):
    PredictionRecorder(store, video.id, None).record(stream(video.path))
    svc = EditingService(store)
    sugg = svc.frame_labels(video.id, 12)
    mask = next(x for x in sugg if x.kind == "mask")
    box = next(x for x in sugg if x.kind == "box")
    svc.accept([mask])
    edited = svc.edit(box, bbox=(1, 1, 9, 9))
    assert edited.state == "edited"
    svc.reject(svc.frame_labels(video.id, 13), reason="bubble")
    drawn = svc.add_box(video.id, 30, (2, 2, 6, 6), track_id=4)
    assert (drawn.state, drawn.origin, drawn.track_id) == ("manual", "drawn", 4)
    assert svc.undo() == "Undo: Draw box"
    assert svc.frame_labels(video.id, 30) == []
    assert svc.undo() == "Undo: Reject 2 suggestion(s)"
    assert {x.state for x in svc.frame_labels(video.id, 13)} == {"suggested"}
    assert svc.redo() == "Redo: Reject 2 suggestion(s)"
    assert {x.state for x in svc.frame_labels(video.id, 13)} == {"rejected"}
    assert svc.can_redo and svc.redo() == "Redo: Draw box"
    assert [x.bbox for x in svc.frame_labels(video.id, 30)] == [(2.0, 2.0, 6.0, 6.0)]
    n = svc.bulk_accept(video.id, kinds=["mask"])
    assert n == 15 - 1 - 1  # frame 12 already accepted, frame 13 rejected
    svc.undo()
    assert store.count_labels(video.id)[("mask", "suggested")] == 13
    svc.set_video_class(video.id, "normal")
    vc2 = svc.set_video_class(video.id, "abnormal")
    assert vc2.class_name == "abnormal"
    assert [x.id for x in svc.video_labels(video.id, kinds=["video_class"]) if x.state != "suggested"] == [
        vc2.id
    ]
    suggested_vc = next(
        x for x in svc.video_labels(video.id, kinds=["video_class"]) if x.state == "suggested"
    )
    svc.accept([suggested_vc])
    vc3 = svc.set_video_class(video.id, "normal")  # two reviewed video classes -> replaced by one, one action
    assert [x.class_name for x in svc.video_labels(video.id, kinds=["video_class"])] == ["normal"]
    assert svc.undo() == "Undo: Set video class normal"
    assert {x.id for x in svc.video_labels(video.id, kinds=["video_class"])} == {vc2.id, suggested_vc.id}
    assert vc3.id not in {x.id for x in svc.video_labels(video.id)}  # ids are never reused
    # the audit log shows the undo as a change of its own, by its author
    summaries = [c.summary for c in store.changes_since(0)]
    assert "Undo: Draw box" in summaries and "Redo: Draw box" in summaries


def test_snapshot_manifest_contains_only_reviewed_labels(store, video, tmp_path):
    from core_model.data.manifest import load_manifest

    PredictionRecorder(store, video.id, None).record(stream(video.path))
    svc = EditingService(store)
    svc.accept([x for x in svc.frame_labels(video.id, 11) if x.kind == "mask"])
    svc.reject(svc.frame_labels(video.id, 14))
    svc.add_box(video.id, 35, (1, 1, 9, 9), track_id=2)
    svc.add_segment(video.id, 10, 25)
    svc.set_video_class(video.id, "abnormal")
    out = tmp_path / "snap" / "manifest.json"
    m = snapshot_manifest(store, [video.id], split="train", out_path=out)
    loaded = load_manifest(out)
    assert loaded.videos == m.videos
    (v,) = loaded.videos
    assert (v.id, v.split, v.num_frames, v.width, v.height, v.video_label) == (
        str(video.id),
        "train",
        40,
        48,
        32,
        "abnormal",
    )
    assert [(s.start, s.end, s.label) for s in v.segments] == [(10, 25, "polyp")]
    frames = {f.frame: f for f in v.frames}
    assert sorted(frames) == [11, 14, 35]
    assert [m.rle for m in frames[11].masks] == [rle(x=11)] and frames[11].boxes == ()
    assert frames[14].negative and not frames[14].masks and not frames[14].boxes  # rejected prediction
    assert [(b.bbox, b.track_id) for b in frames[35].boxes] == [((1.0, 1.0, 9.0, 9.0), 2)]
    assert not v.dense
    assert set(loaded.classes["video"]) == {"normal", "abnormal"} and loaded.classes["mask"] == ("polyp",)
    assert loaded.source["video_ids"] == [video.id]
    store.update_video(video.id, None, review_status="reviewed")
    assert snapshot_manifest(store, [video.id]).videos[0].dense


def test_snapshot_splits_by_video(store, video):
    ids = [video.id]
    for i in range(5):
        ids.append(
            store.add_video(
                video.project_id, path=f"/v/{i}.mp4", path_is_relative=False, content_hash=f"p1:{i}", size_bytes=1,
                frame_count=10, fps=25.0, width=48, height=32,
            ).id
        )  # fmt: skip
    m = snapshot_manifest(store, ids, split="auto", val_fraction=0.34)
    assert sorted(v.split for v in m.videos) == ["train"] * 4 + ["val"] * 2
    from endoreview.services.manifest import ManifestService

    m2 = ManifestService(store).snapshot_manifest(ids, split={ids[0]: "test"})
    assert [v.split for v in m2.videos] == ["test"] + ["unassigned"] * 5


def test_change_poller_shows_other_workstations_edits_once(db_url, video):
    from endoreview.services.changes import ChangePoller
    from endoreview.store import Store

    with (
        Store.open(db_url, reviewer="alice", host="ws-a") as a,
        Store.open(db_url, reviewer="bob", host="ws-b") as b,
    ):
        poller = ChangePoller(b, video_id=video.id)
        assert poller.poll() == []
        lab = EditingService(a).add_box(video.id, 3, (0, 0, 4, 4))
        EditingService(b).add_box(video.id, 4, (0, 0, 4, 4))  # bob's own edit: already on his screen
        a.edit_label(lab.id, lab.version, bbox=(1, 1, 4, 4))
        seen = poller.poll()
        assert [(c.actor, c.summary) for c in seen] == [("alice", "Draw box"), ("alice", "Edit label")]
        assert poller.poll() == []  # each change once
        EditingService(a).reject([a.get_label(lab.id)])
        assert [c.summary for c in poller.poll()] == ["Reject 1 label(s)"]


def test_the_whole_video_call_is_the_models_decision_with_its_explanation_and_ood_flag(store, video):
    """``video_done`` carries the operating point's decision (core_model.contract.video_decision) and the
    out-of-domain verdict: the video-class suggestion is the decision, its reason the banner text, and the run
    keeps both (the library and the player read them from there)."""
    from core_model.contract import OperatingPoint, video_decision

    events = list(stream(video.path))
    p = [e["probs"]["abnormal"] for e in events if e["event"] == "frame"]
    d = video_decision(p, 25.0, OperatingPoint(threshold=0.6, window_s=0.5, calibrated=True))
    events[-1] = {
        **events[-1],
        "probs": {"normal": 0.55, "abnormal": 0.45},  # the mean over clips would say "normal"
        "decision": d.to_dict(),
        "ood": {"score": 3.1, "threshold": 2.0, "out_of_domain": True, "message": "unlike ..."},
    }
    PredictionRecorder(store, video.id, None).record(events)
    vc = [x for x in store.timeline_summary(video.id).segments if x.kind == LabelKind.VIDEO_CLASS]
    assert [(x.class_name, x.score) for x in vc] == [("abnormal", 0.9)]
    assert d.text == "abnormal: polyp suggested at 00:00–00:00, 0.90"
    labs = [x for x in store.labels_for_video(video.id) if x.kind == LabelKind.VIDEO_CLASS]
    assert labs[0].reason == d.text
    summary = store.list_prediction_runs(video.id)[0].params["summary"]
    assert summary["ood"]["out_of_domain"] and summary["decision"]["label"] == "abnormal"
