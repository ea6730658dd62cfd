"""Import into the store and export from it: units, atomicity, cancel, provenance, privacy, round-trip fidelity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core_model.contract import rle_decode, rle_encode
from endoreview.interchange import raster
from endoreview.interchange.exporter import Exporter, ExportOptions, set_text_region
from endoreview.interchange.importer import IMPORTER_VERSION, Importer, provenance_of
from endoreview.interchange.layouts import cvc
from endoreview.store.records import LabelKind, LabelOrigin, ReviewState
from tests.interchange.builders import decode_stream, disk, make_cvc, make_dicom_video, make_kvasir


def _video(path, n=8, h=48, w=64, seed=0):
    from core_model.video import write_video

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps=25.0)
    return path


def _all_labels(store):
    return [lab for v in store.list_videos() for lab in store.labels_for_video(v.id)]


@pytest.fixture
def importer(store, tmp_path):
    return Importer(store, work_dir=tmp_path / "work", chunk_size=4)


def test_import_videos_recursive_skips_reports_progress_and_dicom(store, importer, tmp_path):
    src = tmp_path / "in"
    _video(src / "a.mp4")
    _video(src / "deeper" / "b.mkv", seed=1)
    (src / "notes.txt").write_text("not a video")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    frames = np.random.default_rng(3).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    raw = make_dicom_video(src / "deeper" / "IMG0001", frames)  # PACS exports often have no suffix
    progress = []
    rep = importer.import_videos([src], on_progress=lambda d, t, n: progress.append((d, t)))
    assert len(rep.videos_created) == 3
    assert [p for p, _ in rep.failed] == [str(src / "broken.mp4")] and "broken.mp4" in rep.failed[0][1]
    assert [p for p, _ in rep.skipped] == [str(src / "notes.txt")]
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    dicom = next(v for v in store.list_videos() if "pseudonymous_id" in v.meta)
    assert dicom.frame_count == 12 and dicom.fps == 25.0
    from core_model.video import VideoReader

    with VideoReader(importer.library.resolve_path(dicom)) as r:  # the stream was remuxed, not re-encoded
        assert np.array_equal(np.stack([r[i] for i in range(len(r))]), decode_stream(raw))
    db = (tmp_path / "labels.sqlite3").read_bytes()
    for secret in (b"DOE^JOHN", b"MRN-0042", b"19500101", b"St Example", b"IMG0001"):
        assert secret not in db
    again = importer.import_videos([src])
    assert len(again.videos_existing) == 3 and not again.videos_created
    cancelled = Exporter(store).export(tmp_path / "x", ExportOptions("coco"), should_cancel=lambda: True)
    assert (
        cancelled.cancelled and json.loads((tmp_path / "x" / "export_report.json").read_text())["cancelled"]
    )


def test_import_videos_cancel_keeps_finished_units(store, importer, tmp_path):
    for k in range(3):
        _video(tmp_path / "in" / f"{k}.mp4", seed=k)
    calls = []
    rep = importer.import_videos([tmp_path / "in"], should_cancel=lambda: len(calls.append(1) or calls) > 1)
    assert rep.cancelled and len(rep.videos_created) == 1 and len(store.list_videos()) == 1


def test_dataset_import_labels_are_imported_with_provenance(store, importer, tmp_path):
    make_kvasir(tmp_path / "ds" / "Kvasir-SEG")
    rep = importer.import_dataset(tmp_path / "ds")
    assert rep.ok and len(rep.videos_created) == 3 and rep.labels_added == 6
    v = store.get_video(rep.videos_created[0])
    labs = store.labels_for_video(v.id)
    assert {lab.kind for lab in labs} == {LabelKind.MASK, LabelKind.BOX}
    assert all(lab.origin == LabelOrigin.IMPORTED and lab.state == ReviewState.MANUAL for lab in labs)
    box = next(lab for lab in labs if lab.kind == LabelKind.BOX)
    prov = provenance_of(box)
    assert prov.source.endswith("kavsir_bboxes.json") and prov.field.endswith(".bbox[0]")
    assert (prov.format, prov.importer) == ("kvasir-seg", IMPORTER_VERSION)
    mask = next(lab for lab in labs if lab.kind == LabelKind.MASK)
    assert provenance_of(mask).source.endswith(".jpg") and provenance_of(mask).format == "kvasir-seg"
    assert (
        "kavsir_bboxes.json" in store.get_change_set(store.history("labels", box.id)[0].change_set_id).summary
    )
    again = importer.import_dataset(tmp_path / "ds")
    assert again.labels_added == 0 and len(_all_labels(store)) == 6  # importing twice adds nothing


def test_cvc_sequence_frames_are_zero_based_in_the_store(store, importer, tmp_path):
    truth = make_cvc(tmp_path / "CVC-ClinicDB", n=30, size=16)
    col = cvc.read_cvc(tmp_path / "CVC-ClinicDB", sequences=[(3, 20)])
    rep = importer.import_collection(col)
    assert rep.ok and len(rep.videos_created) == 3  # unassigned runs 1-2 and 23-30 are kept
    seq = next(v for v in store.list_videos() if v.meta["import"]["name"] == "cvc_3_20")
    assert seq.frame_count == 20
    runs = sorted(
        v.meta["import"]["name"] for v in store.list_videos() if v.meta["import"].get("split") == "unassigned"
    )
    assert runs == ["cvc_unassigned_1_2", "cvc_unassigned_23_30"]
    from core_model.video import VideoReader

    with VideoReader(importer.library.resolve_path(seq)) as r:
        import cv2

        first = cv2.imread(str(tmp_path / "CVC-ClinicDB" / "Original" / "3.tif"))[..., ::-1]
        assert np.array_equal(r[0], first)  # file 3.tif (1-based) is frame 0 of the sequence
    masks = {lab.frame: rle_decode(lab.rle) for lab in store.labels_for_video(seq.id)}
    first = provenance_of(min(store.labels_for_video(seq.id), key=lambda lab: lab.frame))
    assert (first.format, first.importer) == (col.layout, IMPORTER_VERSION)
    k0 = min(masks)
    assert Path(first.source).parent.name == "Ground Truth" and first.field == f"frame {3 + k0} (1-based)"
    for k in range(20):
        if truth[3 + k].any():
            assert np.array_equal(masks[k], truth[3 + k])
        else:
            assert k not in masks


def _coco_for(path, video_name, frame, w=64, h=48, bbox=(2, 3, 10, 12)):
    doc = {
        "videos": [{"id": 1, "name": video_name}],
        "images": [
            {
                "id": 1,
                "file_name": f"{video_name}/{frame}.jpg",
                "width": w,
                "height": h,
                "video_id": 1,
                "frame_id": frame,
            }
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": list(bbox)}],
        "categories": [{"id": 1, "name": "polyp"}],
    }
    path.write_text(json.dumps(doc))
    return path


def test_annotation_file_is_atomic_and_malformed_changes_nothing(store, importer, tmp_path):
    importer.import_videos([_video(tmp_path / "v" / "clipA.mp4", n=8)])
    ok = importer.import_annotations(_coco_for(tmp_path / "ok.json", "clipA", 3))
    assert ok.ok and ok.labels_added == 1
    lab = _all_labels(store)[0]
    assert lab.frame == 3 and lab.bbox == (2.0, 3.0, 12.0, 15.0) and lab.origin == LabelOrigin.IMPORTED
    before = len(_all_labels(store))
    bad = importer.import_annotations(_coco_for(tmp_path / "bad.json", "clipA", 99))
    assert bad.failed and "bad.json" in bad.failed[0][1] and "frame 99 does not exist" in bad.failed[0][1]
    unknown = importer.import_annotations(_coco_for(tmp_path / "u.json", "nosuchvideo", 1))
    assert "matches no video" in unknown.failed[0][1]
    (tmp_path / "broken.xml").write_text("<annotations><track id='1' label='p'>")
    broken = importer.import_annotations(tmp_path / "broken.xml")
    assert broken.failed and "does not parse" in broken.failed[0][1]
    assert len(_all_labels(store)) == before


def test_failure_while_writing_a_unit_leaves_nothing(store, importer, tmp_path, monkeypatch):
    make_kvasir(tmp_path / "ds" / "Kvasir-SEG", n=1)
    from endoreview.interchange.detect import read_path
    from endoreview.interchange.model import BoxAnn, Provenance
    from endoreview.store import StoreError

    col = read_path(tmp_path / "ds")
    item = col.videos[0]
    item.boxes += [BoxAnn(0, "polyp", (1.0, 1.0, 5.0 + k, 6.0), Provenance("x")) for k in range(9)]
    cursor = store.change_cursor()

    def fail(labels, summary="Add labels", *, update_meta=None):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "add_labels", fail)
    rep = importer.import_collection(col)
    assert rep.failed and "disk full" in rep.failed[0][1]
    assert store.list_videos() == [] and _all_labels(store) == []
    assert not [c for c in store.changes_since(cursor) if c.summary.startswith(f"Import {col.layout}")]


def test_cancel_mid_dataset_keeps_finished_units(store, importer, tmp_path):
    make_kvasir(tmp_path / "ds" / "Kvasir-SEG", n=3)
    rep = importer.import_dataset(tmp_path / "ds", should_cancel=lambda: bool(_all_labels(store)))
    assert rep.cancelled and len(store.list_videos()) == len(rep.videos_created) >= 1
    assert len(_all_labels(store)) == rep.labels_added


# ------------------------------------------------------------------------------------------------ export
@pytest.fixture
def labelled(store, importer, tmp_path):
    """One video with masks (one with a hole), boxes with tracks, a segment, a video class, a rejected suggestion."""
    from endoreview.services.editing import EditingService

    importer.import_videos([_video(tmp_path / "src" / "patient_smith_2024.mp4", n=8)])
    v = store.list_videos()[0]
    svc = EditingService(store)
    for f in range(6):
        m = disk(48, 64, 20 + 3 * f, 24, 9 + f)
        if f == 2:
            m = m & (1 - disk(48, 64, 26, 24, 3))
        svc.add_mask(v.id, f, rle_encode(m), "polyp", track_id=1)
        svc.add_box(v.id, f, (2.0 + f, 3.5, 30.0 + f, 40.0), "polyp", track_id=1)
    svc.add_segment(v.id, 0, 6, "polyp")
    svc.set_video_class(v.id, "abnormal")
    from endoreview.store.records import NewLabel

    sug = svc.create(
        NewLabel(
            v.id,
            LabelKind.BOX,
            "polyp",
            origin=LabelOrigin.PREDICTED,
            frame=7,
            bbox=(1.0, 1.0, 9.0, 9.0),
            score=0.3,
        )
    )
    svc.reject(sug)
    return store.get_video(v.id)


def _fresh(tmp_path, name):
    from endoreview.store import Store

    return Store.open(str(tmp_path / f"{name}.sqlite3"), reviewer="bob")


@pytest.mark.parametrize("fmt", ["coco", "cvat-video", "png-masks"])
def test_mask_formats_round_trip_pixel_exact(store, labelled, tmp_path, fmt):
    rep = Exporter(store).export(tmp_path / fmt, ExportOptions(fmt, selection="reviewed"))
    assert any("segments and video labels" in d for d in rep.dropped)  # none of these formats is temporal
    other = _fresh(tmp_path, fmt)
    imp = Importer(other, work_dir=tmp_path / "w2")
    imp.import_videos([tmp_path / "src" / "patient_smith_2024.mp4"])
    target = other.list_videos()[0]
    if fmt == "coco":
        from pycocotools.coco import COCO

        api = COCO(str(tmp_path / fmt / "annotations.json"))  # the reference reader accepts it as written
        first = api.loadAnns(api.getAnnIds())[0]
        assert api.annToMask(first).shape == (48, 64) and api.annToMask(first).sum() == first["area"]
        res = imp.import_annotations(tmp_path / fmt / "annotations.json")
    elif fmt == "cvat-video":
        res = imp.import_annotations(next((tmp_path / fmt).glob("*.xml")), video_id=target.id)
    else:
        res = imp.import_annotations(tmp_path / fmt / "masks")  # matched by folder name
    assert res.ok, res.failed
    want = sorted(
        (lab.frame, lab.rle["counts"]) for lab in store.labels_for_video(labelled.id, kinds=["mask"])
    )
    got = sorted((lab.frame, lab.rle["counts"]) for lab in other.labels_for_video(target.id, kinds=["mask"]))
    assert got == want
    if fmt != "png-masks":
        wb = sorted(
            (lab.frame, lab.bbox, lab.track_id)
            for lab in store.labels_for_video(labelled.id, kinds=["box"], states=["manual"])
        )
        gb = sorted(
            (lab.frame, lab.bbox, lab.track_id) for lab in other.labels_for_video(target.id, kinds=["box"])
        )
        assert gb == wb
    other.close()


def test_polygon_and_yolo_fidelity(store, labelled, tmp_path):
    ex = Exporter(store)
    rep = ex.export(tmp_path / "poly", ExportOptions("coco-polygons", selection="reviewed"))
    assert any("holes" in d for d in rep.dropped)
    from endoreview.interchange.formats.coco import read_coco

    back = read_coco(tmp_path / "poly" / "annotations.json").videos[0]
    for lab in store.labels_for_video(labelled.id, kinds=["mask"]):
        m = rle_decode(next(x for x in back.masks if x.frame == lab.frame).rle)
        orig = rle_decode(lab.rle)
        if lab.frame == 2:  # the mask with a hole: the listed loss, nothing else
            filled = raster.polygons_to_mask(raster.mask_to_polygons(orig)[0], 48, 64)
            assert np.array_equal(m, filled) and not np.array_equal(m, orig)
        else:
            assert raster.iou(m, orig) >= 0.98
    for mode in ("yolo-det", "yolo-seg"):
        ex.export(tmp_path / mode, ExportOptions(mode, selection="reviewed", frames=True))
    from endoreview.interchange.formats.yolo import read_yolo

    det = read_yolo(tmp_path / "yolo-det").videos[0]
    for lab in store.labels_for_video(labelled.id, kinds=["box"], states=["manual"]):
        b = next(x for x in det.boxes if x.frame == lab.frame)
        assert max(abs(p - q) for p, q in zip(b.bbox, lab.bbox)) <= 1.0
    seg = read_yolo(tmp_path / "yolo-seg").videos[0]
    for lab in store.labels_for_video(labelled.id, kinds=["mask"]):
        union = np.zeros((48, 64), bool)
        for x in seg.masks:
            if x.frame == lab.frame:
                union |= rle_decode(x.rle).astype(bool)
        orig = rle_decode(lab.rle)
        ref = raster.polygons_to_mask(raster.mask_to_polygons(orig)[0], 48, 64) if lab.frame == 2 else orig
        assert raster.iou(union, ref) >= 0.98


def test_manifest_and_csv_round_trip(store, labelled, tmp_path):
    from core_model.data.manifest import load_manifest

    ex = Exporter(store)
    ex.export(tmp_path / "m", ExportOptions("manifest", selection="reviewed"))
    m = load_manifest(tmp_path / "m" / "manifest.json")
    mv = m.videos[0]
    assert mv.video_label == "abnormal" and [(s.start, s.end) for s in mv.segments] == [(0, 6)]
    assert {f.frame for f in mv.frames if f.negative} == {7}  # the rejected suggestion is a negative frame
    other = _fresh(tmp_path, "m")
    rep = Importer(other, work_dir=tmp_path / "w3").import_dataset(tmp_path / "m" / "manifest.json")
    assert rep.ok, rep.failed
    v2 = other.list_videos()[0]
    want = sorted(
        (lab.frame, lab.rle["counts"]) for lab in store.labels_for_video(labelled.id, kinds=["mask"])
    )
    assert (
        sorted((lab.frame, lab.rle["counts"]) for lab in other.labels_for_video(v2.id, kinds=["mask"]))
        == want
    )

    def rest(st, vid):
        labs = st.labels_for_video(
            vid, kinds=["box", "segment", "video_class"], states=["manual", "accepted", "edited"]
        )
        return sorted(
            (lab.kind, lab.frame, lab.bbox, lab.track_id, lab.start_frame, lab.end_frame, lab.class_name)
            for lab in labs
        )

    assert rest(other, v2.id) == rest(store, labelled.id)
    ex.export(tmp_path / "c", ExportOptions("csv"))
    assert (tmp_path / "c" / "segments.csv").read_text().splitlines()[
        1
    ] == "patient_smith_2024,0,6,polyp,manual"
    assert "patient_smith_2024,abnormal" in (tmp_path / "c" / "video_labels.csv").read_text()
    other.close()


def test_selection_by_state_and_privacy(store, labelled, tmp_path):
    ex = Exporter(store)
    rep = ex.export(tmp_path / "rej", ExportOptions("voc", states=["rejected"]))
    assert rep.labels == 0 and any("rejected" in d for d in rep.dropped)
    assert ex.export(tmp_path / "st", ExportOptions("csv", video_status="reviewed")).videos == 0
    from endoreview.services.library import LibraryService

    LibraryService(store).set_review_status(labelled.id, "reviewed")
    assert ex.export(tmp_path / "st2", ExportOptions("csv", video_status="reviewed")).videos == 1
    labelled = store.get_video(labelled.id)
    set_text_region(store, [labelled.id], [0, 0, 20, 10])
    rep = ex.export(
        tmp_path / "p",
        ExportOptions(
            "coco",
            selection="reviewed",
            frames=True,
            image_format="png",
            pseudonymize=True,
            blank_text=True,
            strip_metadata=True,
        ),
    )
    files = [p for p in (tmp_path / "p").rglob("*") if p.is_file()]
    assert not any("smith" in str(p) for p in files)
    assert "smith" not in (tmp_path / "p" / "annotations.json").read_text()
    import cv2

    img = cv2.imread(str(next((tmp_path / "p" / "images").rglob("*.png"))))
    assert (img[:10, :20] == 0).all() and img[20:, 30:].any()
    assert rep.frames_written == 6
    report = json.loads((tmp_path / "p" / "export_report.json").read_text())
    assert report["dropped"] and "smith" not in json.dumps(report)


def test_cancel_inside_a_unit_rolls_that_unit_back(store, importer, tmp_path):
    make_kvasir(tmp_path / "ds" / "Kvasir-SEG", n=1)
    from endoreview.interchange.detect import read_path
    from endoreview.interchange.model import BoxAnn, Provenance

    col = read_path(tmp_path / "ds")
    col.videos[0].boxes += [BoxAnn(0, "polyp", (1.0, 1.0, 5.0 + k, 6.0), Provenance("x")) for k in range(9)]
    calls = []
    rep = importer.import_collection(col, should_cancel=lambda: len(calls.append(1) or calls) > 2)
    assert rep.cancelled and rep.units_done == 0
    assert store.list_videos() == [] and _all_labels(store) == []


def test_private_manifest_export_reencodes_blanked_pseudonymous_videos(store, labelled, tmp_path):
    from core_model.data.manifest import load_manifest
    from core_model.video import VideoReader

    set_text_region(store, [labelled.id], [40, 0, 64, 12])
    rep = Exporter(store).export(
        tmp_path / "pm",
        ExportOptions(
            "manifest",
            selection="reviewed",
            pseudonymize=True,
            blank_text=True,
            strip_metadata=True,
            video_ids=[labelled.id],
        ),
    )
    text = (tmp_path / "pm" / "manifest.json").read_text()
    assert "smith" not in text and "sqlite" not in text and "alice" not in text
    m = load_manifest(tmp_path / "pm" / "manifest.json")
    v = m.videos[0]
    assert v.id.startswith("v") and v.path == f"videos/{v.id}.mp4" and rep.frames_written == 8
    with VideoReader(m.resolve_path(v)) as r:
        assert len(r) == 8 and r[3][:12, 40:].mean() < 8 and r[3][20:, :30].mean() > 40
    assert any("re-encoded" in d for d in rep.dropped)


def test_export_frames_of_a_missing_video_is_reported_not_fatal(store, labelled, tmp_path):
    (tmp_path / "src" / "patient_smith_2024.mp4").rename(tmp_path / "moved.mp4")
    rep = Exporter(store).export(tmp_path / "x", ExportOptions("coco", frames=True))
    assert rep.failed and "frames not written" in rep.failed[0][1]
    assert json.loads((tmp_path / "x" / "annotations.json").read_text())["annotations"]


def test_image_based_exports_land_on_the_right_frames_when_attached(store, labelled, tmp_path):
    """VOC and YOLO exports hold only labelled frames; re-attached to the video they must keep their frame numbers."""
    ex = Exporter(store)
    ex.export(tmp_path / "voc", ExportOptions("voc", selection="reviewed"))
    ex.export(tmp_path / "yolo", ExportOptions("yolo-det", selection="reviewed", frames=True))
    want = sorted(
        (lab.frame, lab.bbox) for lab in store.labels_for_video(labelled.id, kinds=["box"], states=["manual"])
    )
    for fmt in ("voc", "yolo"):
        other = _fresh(tmp_path, f"att-{fmt}")
        imp = Importer(other, work_dir=tmp_path / f"w-{fmt}")
        imp.import_videos([tmp_path / "src" / "patient_smith_2024.mp4"])
        vid = other.list_videos()[0].id
        rep = imp.import_annotations(tmp_path / fmt)
        assert rep.ok, rep.failed
        got = sorted((lab.frame, lab.bbox) for lab in other.labels_for_video(vid, kinds=["box"]))
        assert [f for f, _ in got] == [f for f, _ in want]
        for (_, a), (_, b) in zip(got, want):
            assert max(abs(p - q) for p, q in zip(a, b)) <= (
                0.5 if fmt == "voc" else 1.0
            )  # VOC: y0 = 3.5 rounded outward
        other.close()


def test_coco_without_frame_ids_needs_frame_numbers_to_attach(store, importer, tmp_path):
    importer.import_videos([_video(tmp_path / "v" / "clipA.mp4", n=8)])
    doc = {
        "images": [{"id": 1, "file_name": "clipA/frame_0005.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
        "categories": [{"id": 1, "name": "polyp"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    rep = importer.import_annotations(tmp_path / "c.json")
    assert rep.failed and "name_base" in rep.failed[0][1] and _all_labels(store) == []
    rep = importer.import_annotations(tmp_path / "c.json", name_base=1)
    assert rep.ok and [lab.frame for lab in _all_labels(store)] == [4]  # frame_0005 (1-based) is frame 4


def test_materialised_sequence_follows_the_frames(tmp_path):
    from endoreview.interchange.importer import materialise_sequence
    from tests.interchange.builders import frame_image, write_img

    a = [write_img(tmp_path / "a" / f"{k}.png", frame_image(8, 8, k)) for k in (3, 1, 2)]
    d = materialise_sequence(a, tmp_path / "seq")
    assert [p.name for p in sorted(d.iterdir())] == ["000000.png", "000001.png", "000002.png"]
    assert (d / "000000.png").read_bytes() == a[0].read_bytes()
    b = [write_img(tmp_path / "b" / f"{k}.png", frame_image(8, 8, 10 + k)) for k in range(3)]
    d2 = materialise_sequence(
        b, tmp_path / "seq"
    )  # same name, other frames: a new folder; the first one is kept
    assert d2 != d and (d2 / "000000.png").read_bytes() == b[0].read_bytes()
    assert (d / "000000.png").read_bytes() == a[0].read_bytes()
    assert materialise_sequence(b, tmp_path / "seq") == d2  # the same frames again: reused


def test_endofm_pretrain_list_reads_back(store, importer, labelled, tmp_path):
    from tests.interchange.builders import frame_image, write_img

    for k in range(4):
        write_img(tmp_path / "seq" / f"{k}.png", frame_image(32, 32, k))
    importer.import_videos([tmp_path / "seq"])
    ex = Exporter(store)
    rep = ex.export(tmp_path / "pt", ExportOptions("endofm-pretrain"))
    lines = (tmp_path / "pt" / "train.csv").read_text().splitlines()
    assert rep.videos == 2 and len(lines) == 2 and all(line.endswith(",-1") for line in lines)
    assert "videos/seq.mp4,-1" in lines  # the image sequence became an MP4 that Endo-FM's PyAV loader decodes
    ex.export(tmp_path / "pp", ExportOptions("endofm-pretrain", pseudonymize=True))
    from endoreview.interchange.detect import read_path

    col = read_path(tmp_path / "pp" / "train.csv")
    from core_model.video import VideoReader

    counts = sorted(len(VideoReader(v.source)) for v in col.videos)
    assert counts == [4, 8] and not any("smith" in v.name for v in col.videos)


@pytest.mark.parametrize(
    "fmt, what, layout",
    [
        ("coco", "annotations.json", "coco"),
        ("coco-polygons", "annotations.json", "coco"),
        ("cvat-video", "*.xml", "cvat-video"),
        ("png-masks", "masks", "mask-folder"),
        ("voc", ".", "voc"),
        ("yolo-seg", ".", "yolo"),
        ("csv", "segments.csv", "segment-csv"),
        ("csv", "video_labels.csv", "video-label-csv"),
        ("manifest", "manifest.json", "manifest"),
    ],
)
def test_every_imported_label_says_where_it_came_from(store, labelled, tmp_path, fmt, what, layout):
    """Issue 22.12: each label imported from each format reads back its file, line or field, format and importer."""
    out = tmp_path / fmt
    Exporter(store).export(out, ExportOptions(fmt, selection="reviewed", frames=fmt.startswith("yolo")))
    src = out if what == "." else next(out.glob(what))
    other = _fresh(tmp_path, f"prov-{fmt}-{src.stem}")
    imp = Importer(other, work_dir=tmp_path / "w-prov")
    imp.import_videos([tmp_path / "src" / "patient_smith_2024.mp4"])
    target = other.list_videos()[0]
    rep = imp.import_annotations(src, video_id=target.id if fmt == "cvat-video" else None)
    assert rep.ok and rep.labels_added, rep.failed
    labs = other.labels_for_video(target.id)
    assert labs and all(lab.origin == LabelOrigin.IMPORTED for lab in labs)
    for lab in labs:
        prov = provenance_of(lab)
        assert (prov.format, prov.importer) == (layout, IMPORTER_VERSION), lab
        assert Path(prov.source).resolve().is_relative_to(out.resolve()) and Path(prov.source).exists()
        if layout != "mask-folder":  # a mask image is its own place; every other format names a line or field
            assert prov.line is not None or prov.field, lab
    again = imp.import_annotations(src, video_id=target.id if fmt == "cvat-video" else None)
    assert len(other.labels_for_video(target.id)) == len(labs) + again.labels_added
    other.close()
