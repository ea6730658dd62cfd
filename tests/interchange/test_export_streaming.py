"""COCO and CVAT exports of a long prediction run are written a part at a time: the exporting process's peak memory
(VmHWM) does not grow with the number of frames, and what is written reads back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from core_model.contract import rle_encode

CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails here instead of swapping
from endoreview.store import Store
from endoreview.interchange.exporter import Exporter, ExportOptions
db, out, fmt, vid = sys.argv[1:5]
with Store.open(db) as s:
    rep = Exporter(s).export(out, ExportOptions(format=fmt, selection="all", video_ids=[int(vid)]))
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"labels": rep.labels, "hwm_kb": hwm}))
"""


def make_db(path: Path, frames: list[int]) -> list[int]:
    from endoreview.store import Store
    from endoreview.store.records import FramePrediction

    rng = np.random.default_rng(0)
    m = np.zeros((90, 160), np.uint8)
    m[20:50, 40:90] = 1
    mask = rle_encode(m)
    ids = []
    with Store.open(str(path), reviewer="t") as s:
        ls = s.create_label_set("set", [{"name": "polyp", "tasks": ["segment", "mask", "box"]}])
        p = s.create_project("P", ls.id)
        for n in frames:
            v = s.add_video(p.id, path=f"/v/{n}.mp4", path_is_relative=False, content_hash=f"p1:{n}",
                            size_bytes=10, frame_count=n, fps=30.0, width=160, height=90)  # fmt: skip
            run = s.start_prediction_run(v.id, None)
            batch = []
            for f in range(n):
                xy = rng.uniform(0, 60, (20, 2))
                boxes = tuple(
                    {"label": "polyp", "score": float(0.1 + 0.04 * k), "bbox": [x, y, x + 20.5, y + 10.25]}
                    for k, (x, y) in enumerate(xy.tolist())
                )
                batch.append(FramePrediction(f, {"abnormal": 0.7}, ({"label": "polyp", "score": 0.9, "rle": mask},),
                                             boxes))  # fmt: skip
                if len(batch) == 256:
                    s.add_frame_predictions(run.id, batch)
                    batch = []
            s.add_frame_predictions(run.id, batch)
            s.finish_prediction_run(run.id)
            ids.append(v.id)
    return ids


def export(db: Path, out: Path, fmt: str, vid: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), str(out), fmt, str(vid)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_coco_and_cvat_exports_stream_in_bounded_memory_and_read_back(tmp_path):
    db = tmp_path / "labels.sqlite3"
    short, long = make_db(db, [300, 1500])
    peaks = {}
    for fmt in ("coco", "cvat-video"):
        a = export(db, tmp_path / f"{fmt}-short", fmt, short)
        b = export(db, tmp_path / f"{fmt}-long", fmt, long)
        assert (a["labels"], b["labels"]) == (300 * 21, 1500 * 21)
        peaks[fmt] = (a["hwm_kb"] / 1024, b["hwm_kb"] / 1024)
        # five times the frames (+25,200 labels) in the same memory: the old whole-video export grew by ~50 MB
        assert b["hwm_kb"] - a["hwm_kb"] < 16 * 1024, peaks
    doc = json.loads((tmp_path / "coco-long" / "annotations.json").read_text())
    assert len(doc["images"]) == 1500 and len(doc["annotations"]) == 1500 * 21
    assert [c["name"] for c in doc["categories"]] == ["polyp"]
    masks = [a for a in doc["annotations"] if "segmentation" in a]
    assert len(masks) == 1500 and masks[0]["area"] == 30 * 50 and masks[0]["bbox"] == [40.0, 20.0, 50.0, 30.0]
    # both read back through the importer's readers
    from endoreview.interchange.formats import coco, cvat

    col = coco.read_coco(tmp_path / "coco-long" / "annotations.json")
    assert sum(len(v.masks) + len(v.boxes) for v in col.videos) == 1500 * 21
    (xml,) = (tmp_path / "cvat-video-short").glob("*.xml")
    (item,) = cvat.read_cvat_video(xml).videos
    assert (len(item.masks), len(item.boxes)) == (300, 300 * 20)
