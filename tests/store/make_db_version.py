"""Write ``tests/data/db_versions/v<N>.sqlite3``: a small database of the current schema with every kind of row.

Run once per released schema version: ``python tests/store/make_db_version.py 1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "db_versions"
#: the imported segment's provenance (schema 2 on)
PROVENANCE = {
    "source": "/d/expert.csv",
    "line": 2,
    "format": "csv",
    "importer": "EndoReview 0.1.0 interchange",
}


def rle(h: int = 32, w: int = 48, x: int = 10) -> dict:
    from pycocotools import mask as mask_utils

    m = np.zeros((h, w), np.uint8)
    m[5:15, x : x + 8] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [h, w], "counts": r["counts"].decode("ascii")}


def populate(store) -> dict:
    """Every kind of row; returns what a reader should find afterwards."""
    from endoreview.store.records import FramePrediction, NewLabel

    ls = store.create_label_set(
        "v-test",
        [{"name": "polyp", "color": "#ff0000", "shortcut": "P", "tasks": ["segment", "mask", "box"]}],
    )
    p = store.create_project("Upgrade test", ls.id, "made by make_db_version")
    v = store.add_video(
        p.id, path="a/b.mp4", path_is_relative=True, content_hash="p1:abc", size_bytes=1234,
        frame_count=20, fps=25.0, width=48, height=32, codec="h264", meta={"site": "s1"},
    )  # fmt: skip
    mv = store.add_model_version(
        "demo-1", architecture="endofm_tiny", files_dir="/m/demo-1", metrics={"f1": 0.5}
    )
    store.activate_model_version(mv.id)
    labs = store.add_labels(
        [
            NewLabel(v.id, "mask", "polyp", frame=3, rle=rle(), track_id=1),
            NewLabel(v.id, "box", "polyp", frame=3, bbox=(10, 5, 18, 15), track_id=1),
            NewLabel(
                v.id, "segment", "polyp", origin="imported", start_frame=2, end_frame=9, provenance=PROVENANCE
            ),  # v1 has no provenance column: its segment is a drawn one
            NewLabel(v.id, "video_class", "abnormal"),
        ]
    )
    store.edit_label(labs[1].id, labs[1].version, bbox=(11, 5, 18, 15))
    run = store.start_prediction_run(v.id, mv.id, {"stride": 1})
    store.add_frame_predictions(
        run.id,
        [
            FramePrediction(
                i,
                {"normal": 0.2, "abnormal": 0.8},
                masks=({"label": "polyp", "score": 0.9, "rle": rle(x=20)},),
            )
            for i in range(5)
        ],
    )
    store.finish_prediction_run(run.id)
    store.set_label_states([x.id for x in store.labels_for_video(v.id, states=["suggested"])][:2], "rejected")
    store.create_job("predict", {"video_ids": [v.id]})
    return {"videos": 1, "labels": 4 + 5, "model_versions": 1, "edited_bbox": (11.0, 5.0, 18.0, 15.0)}


def main(version: str) -> None:
    from endoreview.store import Store

    out = DATA / f"v{version}.sqlite3"
    out.unlink(missing_ok=True)
    with Store.open(str(out), reviewer="maker", host="maker-host") as s:
        populate(s)
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1])
