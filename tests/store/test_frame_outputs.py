"""A prediction run stored one row per frame: every mask and box reads back as the model gave it, on demand per
frame range exactly as a whole-video read, reviewer actions give a suggestion its own row, and old databases
migrate their suggestion rows into the compact form."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from endoreview.store import Store, errors
from endoreview.store.records import FramePrediction
from tests.store.conftest import polyp_video
from tests.store.make_db_version import DATA, rle


@pytest.fixture
def video(store):
    return polyp_video(store, frame_count=300)


def model_output(n_frames: int, seed: int = 0) -> list[FramePrediction]:
    """A procedure-like stream: a mask and 20 boxes on most frames (scores down to 0.1), odd values included."""
    rng = np.random.default_rng(seed)
    out = []
    for f in range(n_frames):
        if f % 7 == 3:
            out.append(FramePrediction(f, {"normal": 0.9, "abnormal": 0.1}))  # a frame without a finding
            continue
        boxes = []
        for k in range(20):
            x0, y0 = float(rng.uniform(0, 30)), float(rng.uniform(0, 20))
            box = {"label": "polyp" if k % 3 else "adenoma", "score": float(rng.uniform(0.1, 1.0)),
                   "bbox": [x0, y0, x0 + float(rng.uniform(1, 15)), y0 + float(rng.uniform(1, 10))]}  # fmt: skip
            if k == 4:
                box["score"] = None
            if k == 5:
                box["track_id"] = 7
            boxes.append(box)
        masks = ({"label": "polyp", "score": float(rng.uniform(0.5, 1)), "rle": rle(x=f % 30)},)
        p = float(rng.uniform(0, 1))
        out.append(FramePrediction(f, {"normal": 1 - p, "abnormal": p}, masks, tuple(boxes)))
    return out


def given(preds: list[FramePrediction]) -> list[tuple]:
    """What the model gave, in a comparable form."""
    out = []
    for fp in preds:
        for m in fp.masks:
            out.append((fp.frame, "mask", m["label"], m["score"], tuple(m["rle"]["size"]), m["rle"]["counts"], None,
                        m.get("track_id")))  # fmt: skip
        for b in fp.boxes:
            out.append(
                (fp.frame, "box", b["label"], b["score"], None, None, tuple(b["bbox"]), b.get("track_id"))
            )
    return sorted(out, key=repr)


def seen(labels) -> list[tuple]:
    return sorted(
        (
            (
                x.frame,
                str(x.kind),
                x.class_name,
                x.score,
                tuple(x.rle["size"]) if x.rle else None,
                x.rle["counts"] if x.rle else None,
                x.bbox,
                x.track_id,
            )  # fmt: skip
            for x in labels
        ),
        key=repr,
    )


def test_every_mask_and_box_reads_back_exactly_and_on_demand_equals_the_whole_video(store, video):
    preds = model_output(120)
    run = store.start_prediction_run(video.id, None)
    assert store.add_frame_predictions(run.id, preds) == sum(len(p.masks) + len(p.boxes) for p in preds)
    store.finish_prediction_run(run.id)
    whole = store.labels_for_video(video.id, kinds=["mask", "box"])
    assert seen(whole) == given(preds)  # every box kept, values exact (scores, None, track ids, classes)
    assert all(x.state == "suggested" and x.origin == "predicted" and x.run_id == run.id for x in whole)
    # the player's on-demand reads (windows and single frames) give exactly the whole-video read
    windows = []
    for a in range(0, 120, 37):
        windows += store.labels_for_video(video.id, kinds=["mask", "box"], frames=(a, min(120, a + 37)))
    assert [(x.id, x.frame, x.bbox, x.rle) for x in windows] == [
        (x.id, x.frame, x.bbox, x.rle) for x in whole
    ]
    for f in (0, 3, 64, 119):
        assert store.labels_for_frame(video.id, f) == [x for x in whole if x.frame == f]
    assert {x.id: x for x in store.labels_by_id([x.id for x in whole[:30]])} == {x.id: x for x in whole[:30]}
    # the lanes' summary: probabilities and best score per frame, NaN where there is no output
    summary = store.run_summary(run.id)
    k = summary.classes.index("abnormal")
    assert np.allclose(summary.probs[:120, k], [p.probs["abnormal"] for p in preds], atol=1e-6)
    assert np.isnan(summary.probs[120:]).all() and np.isnan(summary.best[120:]).all()
    best = [max([1.0 if x["score"] is None else x["score"] for x in (*p.masks, *p.boxes)], default=0.0)
            for p in preds]  # fmt: skip
    assert np.allclose(summary.best[:120], best, atol=1e-6)
    assert store.frame_probs(run.id)[5] == preds[5].probs
    counts = store.count_labels(video.id)
    assert counts == {("mask", "suggested"): sum(len(p.masks) for p in preds),
                      ("box", "suggested"): sum(len(p.boxes) for p in preds)}  # fmt: skip
    tl = store.timeline_summary(video.id)
    assert tl.counts[("box", "suggested")][:7].tolist() == [20, 20, 20, 0, 20, 20, 20]


def test_review_actions_give_a_suggestion_its_own_row_and_undo_reopens_it(store, video):
    run = store.start_prediction_run(video.id, None)
    store.add_frame_predictions(run.id, model_output(10))
    first = store.labels_for_frame(video.id, 1)
    mask, box, other = first[0], first[1], first[2]
    assert mask.id < 0 and box.id < 0  # open suggestions: no row yet
    (acc,) = store.set_label_states([box.id], "accepted")
    assert acc.id > 0 and acc.state == "accepted" and acc.bbox == box.bbox and acc.score == box.score
    assert store.get_label(box.id) == acc  # the suggestion's id now leads to the row made of it
    edited = store.edit_label(mask.id, mask.version, rle=rle(x=2))
    assert edited.state == "edited" and edited.origin == "predicted" and edited.run_id == run.id
    store.delete_labels([other.id])  # a suggestion removed by the reviewer is recorded as rejected
    now = store.labels_for_frame(video.id, 1)
    assert len(now) == len(first)  # nothing doubled: each reviewed one stands where its suggestion stood
    assert {x.id for x in now} & {box.id, mask.id, other.id} == set()
    assert sorted(str(x.state) for x in now if x.id > 0) == ["accepted", "edited", "rejected"]
    with pytest.raises(errors.StaleWriteError):
        store.set_label_states([box.id], "rejected")  # someone else had already reviewed it
    store.undo(store.last_change_id())  # the delete
    assert other.id in {x.id for x in store.labels_for_frame(video.id, 1)}
    # bulk accept over a range takes the open ones only, once
    n_open = len([x for x in store.labels_for_video(video.id, frames=(0, 5)) if x.state == "suggested"])
    assert store.accept_suggestions(video.id, frames=(0, 5)) == n_open
    assert store.accept_suggestions(video.id, frames=(0, 5)) == 0
    # deleting the run keeps what reviewers decided and removes the open suggestions
    store.delete_prediction_run(run.id)
    left = store.labels_for_video(video.id)
    assert left and all(x.id > 0 and x.state != "suggested" for x in left)


def test_a_frame_sent_twice_keeps_both_outputs_and_bad_output_is_refused(store, video):
    run = store.start_prediction_run(video.id, None)
    box = {"label": "polyp", "score": 0.5, "bbox": [0, 0, 3, 3]}
    store.add_frame_predictions(run.id, [FramePrediction(4, boxes=(box,))])
    first = store.labels_for_frame(video.id, 4)[0]
    store.add_frame_predictions(run.id, [FramePrediction(4, boxes=(box, box))])
    assert len(store.labels_for_frame(video.id, 4)) == 3 and store.labels_for_frame(video.id, 4)[0] == first
    with pytest.raises(errors.InvalidInputError, match="x1 > x0"):
        store.add_frame_predictions(run.id, [FramePrediction(5, boxes=({**box, "bbox": [3, 0, 1, 3]},))])
    with pytest.raises(errors.InvalidInputError, match="rle"):
        store.add_frame_predictions(
            run.id, [FramePrediction(5, masks=({"label": "polyp", "rle": {"size": [4, 4], "counts": "x"}},))]
        )
    with pytest.raises(errors.InvalidInputError, match="outside the video"):
        store.add_frame_predictions(run.id, [FramePrediction(300, boxes=(box,))])


def test_a_frame_of_output_costs_a_fraction_of_a_row_per_box(tmp_path):
    """Storage: 200 frames of a mask and 20 boxes each grow the database by a few KB a frame (it was ~15 KB with a
    label row per box and index entries for each)."""
    f = tmp_path / "labels.sqlite3"
    with Store.open(str(f), reviewer="alice") as s:
        ls = s.create_label_set("set", [{"name": "polyp", "tasks": ["mask", "box"]}])
        p = s.create_project("P", ls.id)
        v = s.add_video(p.id, path="/v/a.mp4", path_is_relative=False, content_hash="p1:a", size_bytes=10,
                        frame_count=300, fps=30.0, width=48, height=32)  # fmt: skip
        with sqlite3.connect(f) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            before = (
                con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
            )
        run = s.start_prediction_run(v.id, None)
        s.add_frame_predictions(run.id, model_output(200))
        s.finish_prediction_run(run.id)
    with sqlite3.connect(f) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    per_frame = (after - before) / 200
    assert per_frame < 3000, f"{per_frame:.0f} bytes a frame"


def test_an_old_database_migrates_its_suggestion_rows_into_frame_outputs(tmp_path):
    f = tmp_path / "v1.sqlite3"
    shutil.copy(DATA / "v1.sqlite3", f)
    with sqlite3.connect(f) as con:
        old = con.execute(
            "SELECT frame, kind, class_name, score, rle_counts, rle_h, rle_w, run_id FROM labels "
            "WHERE state = 'suggested' AND kind IN ('mask', 'box') ORDER BY frame, id"
        ).fetchall()
        reviewed = con.execute(
            "SELECT id, state FROM labels WHERE origin = 'predicted' AND state != 'suggested'"
        )
        reviewed = sorted(reviewed.fetchall())
    assert len(old) == 3 and len(reviewed) == 2
    with Store.open(str(f)) as s:
        v = s.list_videos()[0]
        now = s.labels_for_video(v.id, kinds=["mask", "box"], states=["suggested"])
        assert [(x.frame, str(x.kind), x.class_name, x.score, x.rle["counts"], *x.rle["size"], x.run_id)
                for x in now] == old  # fmt: skip
        assert all(x.id < 0 for x in now)
        assert sorted((x.id, str(x.state)) for x in s.labels_for_video(v.id) if x.origin == "predicted"
                      and x.state != "suggested") == reviewed  # fmt: skip
        assert s.set_label_states([now[0].id], "accepted")[0].state == "accepted"
    with sqlite3.connect(f) as con:
        assert con.execute("SELECT count(*) FROM frame_outputs").fetchone()[0] == 5
