"""The store's behaviour as the app sees it, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from endoreview.store import Store, errors
from endoreview.store.records import FramePrediction, LabelKind, NewLabel, ReviewState
from tests.store.make_db_version import rle


def test_a_saved_mask_survives_a_restart(db_url, video):
    with Store.open(db_url, reviewer="alice") as s:
        lab = s.add_labels([NewLabel(video.id, "mask", "polyp", frame=7, rle=rle(), track_id=3)])[0]
    with Store.open(db_url, reviewer="bob") as s:
        again = s.labels_for_frame(video.id, 7)
        assert [(x.id, x.rle, x.track_id, x.state, x.origin, x.created_by) for x in again] == [
            (lab.id, rle(), 3, ReviewState.MANUAL, "drawn", "alice")
        ]
        from pycocotools import mask as mask_utils

        decoded = mask_utils.decode({"size": again[0].rle["size"], "counts": again[0].rle["counts"].encode()})
        assert decoded.shape == (32, 48) and decoded.sum() == 80


def test_invalid_labels_are_refused_with_a_reason(store, video):
    with pytest.raises(errors.InvalidInputError, match="frame in"):
        store.add_labels([NewLabel(video.id, "box", "polyp", frame=100, bbox=(0, 0, 1, 1))])
    with pytest.raises(errors.InvalidInputError, match="x1 > x0"):
        store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(5, 0, 1, 1))])
    with pytest.raises(errors.InvalidInputError, match="segment"):
        store.add_labels([NewLabel(video.id, "segment", "polyp", start_frame=10, end_frame=10)])
    with pytest.raises(errors.InvalidInputError, match="RLE"):
        store.add_labels([NewLabel(video.id, "mask", "polyp", frame=1, rle={"counts": "x"})])
    other_size = {"size": [40, 48], "counts": rle()["counts"]}  # a 32x48 mask's counts under another size
    with pytest.raises(errors.InvalidInputError, match="'counts' cover 1536 pixels"):
        store.add_labels([NewLabel(video.id, "mask", "polyp", frame=1, rle=other_size)])
    with pytest.raises(errors.NotFoundError):
        store.add_labels([NewLabel(video.id + 99, "video_class", "abnormal")])
    assert store.count_labels() == {}


def test_stale_write_is_refused_naming_who_changed_it(db_url, video):
    a = Store.open(db_url, reviewer="alice", host="ws-a")
    b = Store.open(db_url, reviewer="bob", host="ws-b")
    try:
        lab = a.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])[0]
        seen_by_b = b.get_label(lab.id)
        a.edit_label(lab.id, lab.version, bbox=(1, 1, 4, 4))
        with pytest.raises(errors.StaleWriteError) as e:
            b.edit_label(seen_by_b.id, seen_by_b.version, bbox=(2, 2, 4, 4))
        assert "changed by alice at" in str(e.value) and str(e.value).endswith("reload")
        with pytest.raises(errors.StaleWriteError):
            b.set_label_states([lab.id], "rejected", expected_versions={lab.id: seen_by_b.version})
        with pytest.raises(errors.StaleWriteError):
            b.update_video(video.id, video.version + 5, review_status="reviewed")
        assert b.get_label(lab.id).bbox == (1.0, 1.0, 4.0, 4.0)  # nothing overwritten
        # other workstations see the edit by polling the change counter
        cursor = b.change_cursor()
        a.set_label_states([lab.id], "rejected", reason="not a polyp")
        new = b.changes_since(cursor)
        assert [(c.actor, c.host, c.video_id) for c in new] == [("alice", "ws-a", video.id)]
        assert b.get_label(lab.id).state == ReviewState.REJECTED
    finally:
        a.close()
        b.close()


def test_review_states_and_provenance(store, video):
    mv = store.add_model_version("m1", architecture="endofm_tiny", files_dir="/m1")
    run = store.start_prediction_run(video.id, mv.id)
    store.add_frame_predictions(
        run.id,
        [
            FramePrediction(f, boxes=({"label": "polyp", "score": 0.8, "bbox": [1, 1, 9, 9], "track_id": 2},))
            for f in range(3)
        ],
    )
    s0, s1, s2 = store.labels_for_video(video.id)
    assert {(x.state, x.origin, x.model_version_id, x.score) for x in (s0, s1, s2)} == {
        ("suggested", "predicted", mv.id, 0.8)
    }
    store.set_label_states([s0.id], "accepted")
    store.edit_label(s1.id, s1.version, bbox=(2, 2, 9, 9))
    store.set_label_states([s2.id], "rejected", reason="reflection")
    a, e, r = (store.get_label(x.id) for x in (s0, s1, s2))
    assert (a.state, e.state, r.state) == ("accepted", "edited", "rejected")
    assert all(x.reviewed_by == "alice" and x.reviewed_at is not None for x in (a, e, r))
    assert r.reason == "reflection" and e.model_version_id == mv.id and e.origin == "predicted"
    assert store.set_label_states([a.id], "accepted") == []  # idempotent
    with pytest.raises(errors.InvalidInputError):
        store.set_label_states([a.id], "manual")


@pytest.mark.parametrize(
    ("before", "after"),
    [("suggested", "edited"), ("accepted", "edited"), ("edited", "edited"), ("manual", "manual")],
)
def test_an_edit_leaves_the_state_the_domain_record_names(store, video, before, after):
    """The rule lives in ``ReviewState.after_edit`` (the domain record); the store only writes what it says."""
    lab = store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4), state=before)])[0]
    assert ReviewState(before).after_edit() == after
    assert store.edit_label(lab.id, lab.version, bbox=(1, 1, 5, 5)).state == after


def test_audit_log_records_who_where_when_before_after_and_is_append_only(store, video):
    lab = store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])[0]
    store.edit_label(lab.id, lab.version, class_name="adenoma")
    hist = store.history("labels", lab.id)
    assert [h.op for h in hist] == ["insert", "update"]
    assert hist[1].before["class_name"] == "polyp" and hist[1].after["class_name"] == "adenoma"
    cs = store.get_change_set(hist[1].change_set_id)
    assert (cs.actor, cs.host, cs.summary) == ("alice", "ws-1", "Edit label") and cs.at is not None
    from sqlalchemy import text

    with store.engine.connect() as c, pytest.raises(Exception, match="append-only"):
        c.execute(text("UPDATE audit_log SET op = 'x'"))
    with store.engine.connect() as c, pytest.raises(Exception, match="append-only"):
        c.execute(text("DELETE FROM change_sets"))


def test_undo_and_redo_are_audited_changes(store, video):
    labs = store.add_labels(
        [NewLabel(video.id, "box", "polyp", frame=f, bbox=(0, 0, 4, 4)) for f in range(3)]
    )
    created = store.last_change_id()
    store.edit_label(labs[0].id, 1, bbox=(1, 1, 5, 5))
    edit = store.last_change_id()
    store.delete_labels([labs[1].id])
    deleted = store.last_change_id()
    u1 = store.undo(deleted)
    assert store.get_label(labs[1].id).bbox == (0.0, 0.0, 4.0, 4.0)
    u2 = store.undo(edit)
    assert store.get_label(labs[0].id).bbox == (0.0, 0.0, 4.0, 4.0)
    redo = store.undo(u2.id)
    assert store.get_label(labs[0].id).bbox == (1.0, 1.0, 5.0, 5.0)
    assert (u1.undoes_id, u2.undoes_id, redo.undoes_id) == (deleted, edit, u2.id)
    assert u2.summary == "Undo: Edit label"
    # undoing the creation now would discard later edits of label 0: refused, nothing changes
    with pytest.raises(errors.StaleWriteError):
        store.undo(created)
    assert len(store.labels_for_video(video.id)) == 3


def test_undo_refuses_when_someone_changed_the_row_since(db_url, video):
    with Store.open(db_url, reviewer="alice") as a, Store.open(db_url, reviewer="bob") as b:
        lab = a.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])[0]
        a.edit_label(lab.id, 1, bbox=(1, 1, 4, 4))
        mine = a.last_change_id()
        b.edit_label(lab.id, 2, bbox=(2, 2, 4, 4))
        with pytest.raises(errors.StaleWriteError, match="changed by bob"):
            a.undo(mine)
        assert a.get_label(lab.id).bbox == (2.0, 2.0, 4.0, 4.0)


def test_bulk_predictions_and_timeline_summary(store, video):
    run = store.start_prediction_run(video.id, None, {"stride": 2})
    frames = [
        FramePrediction(
            f, {"normal": 0.1, "abnormal": 0.9}, masks=({"label": "polyp", "score": 0.7, "rle": rle()},)
        )
        for f in range(10, 40)
    ]
    assert store.add_frame_predictions(run.id, frames) == 30
    store.add_labels([NewLabel(video.id, "box", "polyp", frame=f, bbox=(0, 0, 2, 2)) for f in (12, 13, 50)])
    store.add_labels([NewLabel(video.id, "segment", "polyp", start_frame=10, end_frame=40)])
    store.accept_suggestions(video.id, frames=(10, 20))
    t = store.timeline_summary(video.id)
    assert t.frame_count == 100
    assert t.runs("mask", "accepted") == [(10, 20)] and t.runs("mask", "suggested") == [(20, 40)]
    assert t.runs("mask") == [(10, 40)]
    assert t.runs("box") == [(12, 14), (50, 51)]
    assert int(t.counts[("box", "manual")].sum()) == 3 and t.counts[("mask", "accepted")].dtype == np.int32
    assert [(x.kind, x.start_frame, x.end_frame) for x in t.segments] == [(LabelKind.SEGMENT, 10, 40)]
    assert store.frame_probs(run.id)[15] == {"normal": 0.1, "abnormal": 0.9}
    assert store.finish_prediction_run(run.id).state == "finished"


def test_remove_video_purges_predictions_keeps_reviewed_labels_unless_asked(store, video):
    run = store.start_prediction_run(video.id, None)
    store.add_frame_predictions(
        run.id,
        [
            FramePrediction(
                f, {"abnormal": 0.9}, boxes=({"label": "polyp", "score": 0.5, "bbox": [0, 0, 3, 3]},)
            )
            for f in range(5)
        ],
    )
    store.set_label_states([store.labels_for_video(video.id)[0].id], "rejected")
    manual = store.add_labels([NewLabel(video.id, "segment", "polyp", start_frame=0, end_frame=5)])[0]
    counts = store.remove_video(video.id)
    assert counts == {"prediction_runs": 1, "labels": 0}
    assert store.list_videos() == [] and store.list_prediction_runs(video.id) == []
    kept = store.labels_for_video(video.id)
    assert {(x.id == manual.id or x.state == "rejected") for x in kept} == {True} and len(kept) == 2
    assert all(x.run_id is None for x in kept)
    assert store.restore_video(video.id).removed_at is None
    assert store.remove_video(video.id, purge_labels=True) == {"prediction_runs": 0, "labels": 2}
    assert store.labels_for_video(video.id) == []
    with pytest.raises(errors.NotFoundError):
        store.get_video(video.id)


def test_import_change_names_its_video(store, video):
    assert store.changes_since(0, video_id=video.id)[0].summary == "Import video"


def test_library_filters(store, video):
    other = store.add_video(
        video.project_id, path="/v/colon_b.mkv", path_is_relative=False, content_hash="p1:b", size_bytes=1,
        frame_count=5, fps=25, width=8, height=8, codec="hevc", meta={"site": "hospital-2"},
    )  # fmt: skip
    store.update_video(other.id, other.version, review_status="in_review", assigned_reviewer="carol")
    assert [v.id for v in store.list_videos(status="in_review")] == [other.id]
    assert [v.id for v in store.list_videos(assigned_to="carol")] == [other.id]
    assert [v.id for v in store.list_videos(search="HOSPITAL-2")] == [other.id]
    assert [v.id for v in store.list_videos(search="a.mp4")] == [video.id]
    assert [v.id for v in store.list_videos(limit=1, offset=1)] == [other.id]
    assert store.get_video(other.id).assigned_reviewer == "carol"


def test_model_registry_tables(store):
    m1 = store.add_model_version("base", architecture="endofm_small", files_dir="/m/base", activate=True)
    m2 = store.add_model_version(
        "ft-1", architecture="endofm_small", files_dir="/m/ft1", parent_id=m1.id,
        data_snapshot={"manifest": "x.json", "videos": 12}, hyperparameters={"lr": 1e-4}, metrics={"f1": 0.8},
    )  # fmt: skip
    assert store.active_model_version().id == m1.id
    store.activate_model_version(m2.id)
    assert [(m.name, m.is_active) for m in store.list_model_versions()] == [("base", False), ("ft-1", True)]
    got = store.update_model_version(m2.id, metrics={"f1": 0.85})
    assert (got.parent_id, got.hyperparameters, got.metrics) == (m1.id, {"lr": 1e-4}, {"f1": 0.85})
    assert store.find_model_version("ft-1").data_snapshot["videos"] == 12
    with pytest.raises(errors.InvalidInputError):
        store.add_model_version("base", architecture="x", files_dir="/y")
    store.delete_model_version(m1.id)
    assert store.get_model_version(m2.id).parent_id is None


def test_jobs_table(store):
    job = store.create_job("predict", {"video_ids": [1]})
    assert (job.state, job.progress, job.created_by) == ("queued", 0.0, "alice")
    store.update_job(job.id, state="running", pid=123)
    store.update_job(job.id, progress=0.5, message="half")
    done = store.update_job(job.id, state="succeeded", result={"runs": [1]})
    assert done.started_at is not None and done.finished_at is not None and done.result == {"runs": [1]}
    assert [j.id for j in store.list_jobs(state="succeeded")] == [job.id]


def test_ids_are_never_reused_so_history_means_one_object(store, video):
    a = store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])[0]
    store.delete_labels([a.id])
    b = store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])[0]
    assert b.id != a.id
    assert [h.op for h in store.history("labels", a.id)] == ["insert", "delete"]


def test_bulk_accept_of_a_long_video_and_its_undo_are_fast_and_exact(store, video):
    import time

    from endoreview.store.errors import StaleWriteError

    run = store.start_prediction_run(video.id, None)
    store.add_frame_predictions(
        run.id,
        [
            FramePrediction(f % 100, boxes=({"label": "polyp", "score": 0.5, "bbox": [0, 0, 3, 3]},))
            for f in range(1000)
        ],
    )
    one = store.labels_for_frame(video.id, 5)[0]
    store.edit_label(one.id, one.version, bbox=(1, 1, 3, 3))  # an edited one stays edited
    t0 = time.perf_counter()
    assert store.accept_suggestions(video.id) == 999
    accept_id = store.last_change_id()
    assert store.count_labels(video.id) == {("box", "accepted"): 999, ("box", "edited"): 1}
    # an accepted suggestion is a label row of its own, made by the accept, naming the model output it came from
    entry = store.history("labels", store.labels_for_frame(video.id, 7)[0].id)[-1]
    assert entry.op == "insert" and entry.before is None
    assert (entry.after["state"], entry.after["reviewed_by"], entry.after["origin"]) == (
        "accepted", "alice", "predicted"
    ) and entry.after["pred_ref"] is not None  # fmt: skip
    store.undo(accept_id)
    assert store.count_labels(video.id) == {("box", "suggested"): 999, ("box", "edited"): 1}
    assert all(x.reviewed_by is None for x in store.labels_for_frame(video.id, 7))
    assert time.perf_counter() - t0 < 60  # generous: thousands of audited rows must not take minutes
    # a label changed after the accept makes its undo refuse, leaving everything as it is
    store.accept_suggestions(video.id)
    again = store.last_change_id()
    lab = store.labels_for_frame(video.id, 9)[0]
    store.set_label_states([lab.id], "rejected")
    with pytest.raises(StaleWriteError, match="changed by alice"):
        store.undo(again)
    assert store.count_labels(video.id)[("box", "accepted")] == 998


def test_two_undos_in_a_row_on_one_row(store, video):
    """Undo, undo again: each restores the state before its change, although the first undo moved the row's
    version on. A change made later and not undone still blocks the older undo."""
    v1 = store.update_video(video.id, video.version, review_status="in_review")
    first = store.last_change_id()
    store.update_video(video.id, v1.version, review_status="reviewed")
    second = store.last_change_id()
    store.undo(second)
    assert str(store.get_video(video.id).review_status) == "in_review"
    store.undo(first)
    assert str(store.get_video(video.id).review_status) == "unreviewed"

    labs = store.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 4, 4))])
    store.edit_label(labs[0].id, labs[0].version, bbox=(1, 1, 5, 5))
    e1 = store.last_change_id()
    lab = store.get_label(labs[0].id)
    store.edit_label(lab.id, lab.version, bbox=(2, 2, 6, 6))
    e2 = store.last_change_id()
    store.undo(e2)
    store.undo(e1)
    assert store.get_label(labs[0].id).bbox == (0.0, 0.0, 4.0, 4.0)
    # a later edit that was not undone still protects the row
    lab = store.get_label(labs[0].id)
    store.edit_label(lab.id, lab.version, bbox=(3, 3, 7, 7))
    e3 = store.last_change_id()
    lab = store.get_label(labs[0].id)
    store.edit_label(lab.id, lab.version, bbox=(4, 4, 8, 8))
    with pytest.raises(errors.StaleWriteError):
        store.undo(e3)
    assert store.get_label(labs[0].id).bbox == (4.0, 4.0, 8.0, 8.0)


SMALL = dict(path_is_relative=False, size_bytes=10, frame_count=10, fps=30.0, width=48, height=32)


def test_latest_prediction_runs_names_each_videos_newest_run_of_the_project(store, video):
    """The library lists every video's newest run from this one read (it made one query per video)."""
    other = store.add_video(video.project_id, path="/v/b.mp4", content_hash="p1:b", **SMALL)
    store.add_video(video.project_id, path="/v/c.mp4", content_hash="p1:c", **SMALL)
    old = store.start_prediction_run(video.id, None)
    new = store.start_prediction_run(video.id, None)
    only = store.start_prediction_run(other.id, None)
    project = store.create_project("Q", store.get_project(video.project_id).label_set_id)
    elsewhere = store.add_video(project.id, path="/v/d.mp4", content_hash="p1:d", **SMALL)
    store.start_prediction_run(elsewhere.id, None)  # another project's video and run stay out
    got = store.latest_prediction_runs(video.project_id)
    assert {v: r.id for v, r in got.items()} == {video.id: new.id, other.id: only.id}
    assert old.id != new.id
