"""The procedure-scale export paths give what the slow exact computations give: CVAT's row-major mask runs built
from COCO's runs (never decoding the mask) against decoding the mask and encoding its box row by row."""

from __future__ import annotations

import numpy as np

from core_model.contract import rle_counts, rle_decode, rle_encode
from endoreview.interchange.formats import cvat


def _masks(rng: np.random.Generator):
    """Masks of every shape the conversion has cases for: noise, rectangles (runs over column ends: a whole
    column and the top of the next), one column, one row, one pixel, the whole frame, corners."""
    for i in range(800):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        m = np.zeros((h, w), np.uint8)
        kind = i % 5
        if kind == 0:
            m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        elif kind in (1, 2):
            for _ in range(int(rng.integers(1, 5))):
                y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
                m[y : y + int(rng.integers(1, h + 1)), x : x + int(rng.integers(1, w + 1))] = 1
        elif kind == 3:
            m[:, int(rng.integers(0, w))] = 1
            m[int(rng.integers(0, h)), :] = 1
        else:
            m[int(rng.integers(0, h)), int(rng.integers(0, w))] = 1
        yield m
    yield np.ones((7, 5), np.uint8)
    corner = np.zeros((6, 9), np.uint8)
    corner[0, 0] = corner[-1, -1] = 1
    yield corner
    yield np.zeros((4, 4), np.uint8)


def test_cvat_mask_runs_from_coco_runs_match_the_exact_decode():
    rng = np.random.default_rng(7)
    n = 0
    for m in _masks(rng):
        rle = rle_encode(m)
        exact = cvat.cvat_rle_encode(rle_decode(rle))  # decodes the whole mask, encodes its box row by row
        assert cvat.cvat_rle_from_coco(rle) == exact, m.tolist()
        if exact is not None:
            (h, w), runs = rle_counts(rle)
            got = cvat.row_major_runs(h, runs)
            assert got is not None and int(got[0].sum()) == got[3] * got[4]
            n += 1
    assert n > 500


def test_cvat_mask_runs_of_a_1080p_mask_read_back_exactly():
    yy, xx = np.mgrid[:1080, :1920]
    m = (((xx - 900) / 700.0) ** 2 + ((yy - 500) / 420.0) ** 2 < 1).astype(np.uint8)
    m[:, 1700:1702] = 1  # full-height columns: runs over column ends
    m[300:340, 100:1800] ^= 1  # a band across the blob: holes and islands
    rle = rle_encode(m)
    text, left, top, bw, bh = cvat.cvat_rle_from_coco(rle)
    assert (text, left, top, bw, bh) == cvat.cvat_rle_encode(m)
    back = cvat.cvat_rle_decode(text, left, top, bw, bh, 1080, 1920, "t.xml", 1)
    assert np.array_equal(back, m)


def _procedure(store, n: int = 40):
    """A 64x48 video with a model run (per frame: an untracked mask, a tracked mask, boxes, one the exact box of
    the untracked mask) and reviewers' work on it: suggestions accepted, rejected, edited, a manual box."""
    from endoreview.store.records import FramePrediction, LabelKind, NewLabel

    ls = store.create_label_set("set", [{"name": "polyp", "tasks": ["segment", "mask", "box"]},
                                        {"name": "adenoma", "tasks": ["mask", "box"]}])  # fmt: skip
    p = store.create_project("P", ls.id)
    v = store.add_video(p.id, path="/v/a.mp4", path_is_relative=False, content_hash="p1:a", size_bytes=10,
                        frame_count=n, fps=30.0, width=64, height=48)  # fmt: skip
    rng = np.random.default_rng(3)
    run = store.start_prediction_run(v.id, None)
    batch = []
    for f in range(n):
        m = np.zeros((48, 64), np.uint8)
        x, y = int(rng.integers(0, 40)), int(rng.integers(0, 30))
        m[y : y + 12, x : x + 20] = 1
        m[:, 60] = f % 2  # a full-height column on odd frames: runs over column ends
        m2 = (rng.random((48, 64)) < 0.05).astype(np.uint8)
        masks = ({"label": "polyp", "score": 0.8, "rle": rle_encode(m)},
                 {"label": "adenoma", "score": None, "rle": rle_encode(m2), "track_id": 3})  # fmt: skip
        x0, y0 = float(x), float(0 if f % 2 else y)
        x1, y1 = float(61 if f % 2 else x + 20), float(48 if f % 2 else y + 12)
        boxes = [{"label": "polyp", "score": 0.7, "bbox": [x0, y0, x1, y1]}]  # the mask's own box
        boxes += [{"label": "polyp" if k % 2 else "adenoma", "score": float(rng.uniform(0.1, 1)),
                   "bbox": [1.5 * k, 2.25, 1.5 * k + 7.125, 9.0], "track_id": 5 if k == 2 else None}
                  for k in range(4)]  # fmt: skip
        batch.append(FramePrediction(f, {"polyp": 0.5}, masks, tuple(boxes)))
    store.add_frame_predictions(run.id, batch)
    store.finish_prediction_run(run.id)
    sug = store.suggestions(v.id, frames=(0, 6))
    store.set_label_states([sug[0].id], "accepted")  # frame 0's untracked mask
    store.set_label_states([x.id for x in sug if x.frame == 1 and x.kind == "box"][:2], "rejected")
    store.edit_label(sug[-1].id, sug[-1].version, bbox=(3.0, 4.0, 20.0, 30.0))
    store.add_labels([NewLabel(v.id, LabelKind.BOX, "polyp", frame=2, bbox=(0.0, 0.0, 10.0, 10.0))])
    return v, run


def _reference(store, v, fmt: str, tmp_path):
    """The export as the whole-document writers make it from every label object (the slow exact path)."""
    from endoreview.interchange.exporter import to_item
    from endoreview.interchange.formats import coco

    dropped: set[str] = set()
    item = to_item(v, store.labels_for_video(v.id), "a", dropped)
    if fmt == "coco":
        col = __import__("endoreview.interchange.model", fromlist=["Collection"]).Collection(videos=[item])
        doc, _ = coco.coco_document(col, frame_name=lambda vv, f: f"images/a/{f:06d}.jpg")
        return doc
    labels = sorted({a.label for a in (*item.masks, *item.boxes)})
    text, _ = cvat.cvat_video_xml("a", 64, 48, v.frame_count, item.boxes, item.masks, labels)
    p = tmp_path / "ref.xml"
    p.write_text(text)
    return cvat.read_cvat_video(p).videos[0]


def _named(doc: dict) -> list[dict]:
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    return [{**a, "category_id": cats[a["category_id"]]} for a in doc["annotations"]]


def test_streamed_exports_of_a_reviewed_run_equal_the_label_by_label_export(store, tmp_path, monkeypatch):
    import json

    from endoreview.interchange.exporter import Exporter, ExportOptions
    from endoreview.store.frame_outputs import unpack_raw

    v, run = _procedure(store)
    # the model's masks carry their area and box as recorded (exports read them instead of parsing the runs)
    rows, _ = store.suggestion_rows(v.id, frames=(0, 1))
    for entry in unpack_raw(*rows[0][3:6])[0]:
        rle = {"size": entry[2:4], "counts": entry[4]}
        box, area = cvat.raster.rle_bbox_area(rle)
        assert entry[6] == area == int(rle_decode(rle).sum()) and entry[7] == [int(c) for c in box]
    Exporter(store).export(tmp_path / "c", ExportOptions("coco", selection="all"))
    got = json.loads((tmp_path / "c" / "annotations.json").read_text())
    ref = _reference(store, v, "coco", tmp_path)
    assert got["images"] == ref["images"]
    assert _named(got) == _named(ref)
    assert {a["review_state"] for a in got["annotations"]} == {"suggested", "accepted", "edited", "manual"}
    assert any(a.get("endoreview_box") for a in got["annotations"])  # a mask paired with its own box

    from endoreview.interchange import exporter

    ref = _reference(store, v, "cvat", tmp_path)

    # untracked shapes get the next free track ids, in another order than the whole-document writer gives them
    def key(a):
        track = a.track_id if a.track_id in (3, 5) else None
        return (a.frame, a.label, repr(track), repr(getattr(a, "bbox", None)), repr(getattr(a, "rle", None)))

    def cvat_export(name: str):
        Exporter(store).export(tmp_path / name, ExportOptions("cvat-video", selection="all"))
        (xml,) = (tmp_path / name).glob("*.xml")
        back = cvat.read_cvat_video(xml).videos[0]
        assert sorted(map(key, back.masks)) == sorted(map(key, ref.masks))
        assert len(back.masks) == 2 * v.frame_count
        assert sorted(map(key, back.boxes)) == sorted(map(key, ref.boxes))
        assert sum(a.track_id == 3 for a in back.masks) == v.frame_count
        return xml.read_bytes()

    whole = cvat_export("x")
    # the masks converted by worker processes (as on a long video) give the same file
    monkeypatch.setattr(cvat, "PARALLEL_MASKS", 1)
    assert cvat_export("p") == whole
    # a video read in many parts, each written while the next one's masks are converted, has every shape once;
    # with the workers or without, the same file
    monkeypatch.setattr(exporter, "STREAM_FRAMES", 7)
    parts = cvat_export("q")
    monkeypatch.setattr(cvat, "PARALLEL_MASKS", 10**9)
    assert cvat_export("r") == parts


def test_run_lengths_are_written_as_python_writes_them():
    """The vectorised integer join gives exactly ``", ".join(map(str, v))``: every digit count, zeros, one number,
    values past 32 bits, and (through the fallback) negative numbers."""
    from endoreview.interchange.util import join_ints

    rng = np.random.default_rng(5)
    cases = [np.array([0]), np.array([7]), np.array([10, 0, 9, 100]), np.array([2**31, 2**40 + 3, 1])]
    cases += [rng.integers(0, int(10 ** rng.integers(1, 13)), int(rng.integers(1, 300))) for _ in range(300)]
    cases += [np.array([-5, 12, 0])]
    for v in cases:
        assert join_ints(v) == ", ".join(map(str, v.tolist())), v
        assert join_ints(v, ";") == ";".join(map(str, v.tolist()))
    assert join_ints(np.zeros(0, np.int64)) == ""
