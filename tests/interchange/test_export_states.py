"""Issue 22 item 10: exports say which labels are model suggestions; ground-truth exports hold reviewed labels only."""

from __future__ import annotations

import json

from core_model.contract import rle_encode
from endoreview.interchange.exporter import STATE_DROPPED, Exporter, ExportOptions
from endoreview.interchange.importer import Importer
from endoreview.services.editing import EditingService
from endoreview.services.predictions import PredictionRecorder
from tests.interchange.builders import disk
from tests.interchange.test_import_export import _video


def polyp_events(n: int, box_score: float) -> list[dict]:
    """A predictor's events for ``n`` frames of 64x48, each with the same polyp mask (0.8) and box."""
    rle = rle_encode(disk(48, 64, 30, 20, 8))
    box = {"label": "polyp", "score": box_score, "bbox": [22.0, 12.0, 39.0, 29.0]}
    frames = [
        {"event": "frame", "frame": f, "probs": {"polyp": 0.9}, "masks": [{"label": "polyp", "score": 0.8, "rle": rle}],
         "boxes": [box]}
        for f in range(n)
    ]  # fmt: skip
    return [*frames, {"event": "video_done", "probs": {"polyp": 0.9}}]


def _analysed(store, tmp_path):  # 4 frames of suggestions; frame 0's mask accepted
    Importer(store, work_dir=tmp_path / "w").import_videos([_video(tmp_path / "v" / "clip.mp4", n=4)])
    v = store.list_videos()[0]
    PredictionRecorder(store, v.id, None).record(polyp_events(4, box_score=0.3))
    svc = EditingService(store)
    svc.accept([x for x in svc.frame_labels(v.id, 0) if x.kind == "mask"])
    return v


def test_the_default_coco_export_is_ground_truth_only(store, tmp_path):
    _analysed(store, tmp_path)
    rep = Exporter(store).export(tmp_path / "o", ExportOptions("coco"))
    doc = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert rep.labels == 1 and [a["review_state"] for a in doc["annotations"]] == ["accepted"]
    assert json.loads((tmp_path / "o" / "export_report.json").read_text())["selection"] == "reviewed"


def test_exporting_all_labels_says_each_ones_state_and_score(store, tmp_path):
    _analysed(store, tmp_path)
    Exporter(store).export(tmp_path / "o", ExportOptions("coco", selection="all"))
    doc = json.loads((tmp_path / "o" / "annotations.json").read_text())
    got = sorted((a["review_state"], a["score"], "segmentation" in a) for a in doc["annotations"])
    # frame 0: the accepted mask, and the still-open box on its own (never folded into the accepted annotation);
    # frames 1-3: mask and box suggestions, one annotation each
    assert got == [("accepted", 0.8, True), ("suggested", 0.3, False)] + [("suggested", 0.8, True)] * 3
    assert [a["endoreview_box"] for a in doc["annotations"] if a["review_state"] == "accepted"] == [False]
    # a format that cannot say so reports it
    rep = Exporter(store).export(tmp_path / "y", ExportOptions("yolo-det", selection="all"))
    assert STATE_DROPPED in rep.dropped
    rep = Exporter(store).export(tmp_path / "y2", ExportOptions("yolo-det"))
    assert STATE_DROPPED not in rep.dropped


def test_the_command_line_exports_reviewed_labels_unless_told_all(store, tmp_path):
    from endoreview.interchange.cli import main

    _analysed(store, tmp_path)
    db = str(tmp_path / "labels.sqlite3")  # the store fixture's database
    assert main(["--db", db, "export", "coco", str(tmp_path / "c")]) == 0
    assert len(json.loads((tmp_path / "c" / "annotations.json").read_text())["annotations"]) == 1
    assert main(["--db", db, "export", "coco", str(tmp_path / "a"), "--all"]) == 0
    assert len(json.loads((tmp_path / "a" / "annotations.json").read_text())["annotations"]) == 5
