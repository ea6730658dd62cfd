"""Data safety of imports (issue 19): hostile or unlucky input must not delete, corrupt or exhaust anything."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from endoreview.interchange.importer import Importer
from tests.interchange.builders import frame_image, make_kvasir, write_img, zip_folder


@pytest.fixture
def importer(store, tmp_path):
    return Importer(store, work_dir=tmp_path / "work", chunk_size=4)


def _playable(importer, video) -> bool:
    from core_model.video import VideoReader

    with VideoReader(importer.library.resolve_path(video)) as r:
        return len(r) == video.frame_count and r[0] is not None


def test_second_zip_of_the_same_name_keeps_the_first_datasets_frames(store, importer, tmp_path):
    make_kvasir(tmp_path / "a" / "Kvasir-SEG", n=2)
    make_kvasir(tmp_path / "b" / "Kvasir-SEG", n=3)
    for k, img in enumerate(sorted((tmp_path / "b" / "Kvasir-SEG" / "images").iterdir())):
        write_img(img, frame_image(40 + 4 * k, 48 + 6 * k, 50 + k))  # other frames, same file names
    (tmp_path / "z1").mkdir()
    (tmp_path / "z2").mkdir()
    z1 = zip_folder(tmp_path / "a" / "Kvasir-SEG", tmp_path / "z1" / "dataset.zip", arc_root="Kvasir-SEG")
    z2 = zip_folder(tmp_path / "b" / "Kvasir-SEG", tmp_path / "z2" / "dataset.zip", arc_root="Kvasir-SEG")
    first = importer.import_dataset(z1)
    assert first.ok and len(first.videos_created) == 2
    second = importer.import_dataset(z2)
    assert second.ok and len(second.videos_created) == 3
    videos = store.list_videos()
    assert len(videos) == 5
    for v in videos:  # every stored video still plays from its frames
        assert _playable(importer, v), v.source_path
    again = importer.import_dataset(z1)  # the same archive again reuses its folder
    assert again.ok and not again.videos_created and again.labels_added == 0
    assert all(_playable(importer, v) for v in store.list_videos())


@pytest.mark.parametrize("name", ["..zip", "...zip"])
def test_zip_named_dots_is_refused_and_removes_nothing(store, importer, tmp_path, name):
    make_kvasir(tmp_path / "a" / "Kvasir-SEG", n=1)
    ok = importer.import_dataset(
        zip_folder(tmp_path / "a" / "Kvasir-SEG", tmp_path / "dataset.zip", arc_root="K")
    )
    assert ok.ok
    (importer.work_dir / "dicom").mkdir(parents=True)
    keep = importer.work_dir / "dicom" / "remux.mp4"
    keep.write_bytes(b"only playable copy")
    before = sorted(p for p in importer.work_dir.rglob("*"))
    evil = tmp_path / "evil"
    evil.mkdir()
    zip_folder(tmp_path / "a" / "Kvasir-SEG", evil / name, arc_root="K")
    rep = importer.import_dataset(evil / name)
    if rep.failed:
        assert name in rep.failed[0][1] or "stem" in rep.failed[0][1]
    after = sorted(p for p in importer.work_dir.rglob("*"))
    assert set(before) <= set(after)  # nothing that existed was removed
    assert keep.read_bytes() == b"only playable copy"
    assert all(_playable(importer, v) for v in store.list_videos())


def test_zip_bomb_is_refused_before_writing(store, importer, tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("ds/images/a.jpg", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(200):  # 200 MiB of zeros compress to ~200 KB
                f.write(block)
    assert z.stat().st_size < 1 << 20
    rep = importer.import_dataset(z)
    assert rep.failed and "bomb.zip" in rep.failed[0][1] and "zip bomb" in rep.failed[0][1]
    written = (
        sum(p.stat().st_size for p in importer.work_dir.rglob("*") if p.is_file())
        if importer.work_dir.exists()
        else 0
    )
    assert written == 0


@pytest.mark.parametrize("filename", ["../outside/secret.png", "/ABS/secret.png"])
def test_voc_filename_outside_the_dataset_is_refused(store, importer, tmp_path, filename):
    from tests.interchange.builders import voc

    outside = tmp_path / "outside"
    write_img(outside / "secret.png", frame_image(32, 40, 1))
    ds = tmp_path / "ds"
    ds.mkdir()
    write_img(ds / "frame.png", frame_image(32, 40, 2))
    fname = filename.replace("/ABS", str(tmp_path))
    (ds / "frame.xml").write_text(voc(fname, 40, 32, [("polyp", 2, 3, 20, 30)]))
    rep = importer.import_dataset(ds / "frame.xml")
    assert rep.failed and "frame.xml" in rep.failed[0][1] and "filename" in rep.failed[0][1]
    assert not any("outside" in v.path for v in store.list_videos())


def test_csv_export_neutralises_spreadsheet_formulas_and_reads_back(store, importer, tmp_path):
    import csv

    from core_model.video import write_video
    from endoreview.interchange.exporter import Exporter, ExportOptions
    from endoreview.interchange.formats.tables import read_segment_csv, read_video_label_csv
    from endoreview.services.editing import EditingService

    names = ["=HYPERLINK(1)", "@SUM(A1)", "+cmd", "-2+3"]
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for n in names:
        write_video(
            tmp_path / "in" / f"{n}.mp4", rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8), fps=25.0
        )
    rep = importer.import_videos([tmp_path / "in"])
    assert len(rep.videos_created) == 4
    svc = EditingService(store)
    for v in store.list_videos():
        svc.add_segment(v.id, 0, 2, "polyp")
        svc.set_video_class(v.id, "abnormal")
    Exporter(store).export(tmp_path / "c", ExportOptions("csv"))
    for f in ("segments.csv", "video_labels.csv"):
        with open(tmp_path / "c" / f, newline="") as fh:
            cells = [c for row in list(csv.reader(fh))[1:] for c in row]
        assert all(not c.startswith(("=", "+", "@")) for c in cells), cells
        assert not any(c.startswith("-") and not c.lstrip("-").isdigit() for c in cells), cells
    segs = read_segment_csv(tmp_path / "c" / "segments.csv")
    assert "-2_3" in {v.name for v in segs.videos}  # the quote is removed again on import
    assert "-2_3" in {v for v, _, _ in read_video_label_csv(tmp_path / "c" / "video_labels.csv")}


def test_csv_cells_of_free_text_labels_are_neutralised(tmp_path):
    import csv

    from endoreview.interchange.formats.tables import (
        read_segment_csv,
        read_video_label_csv,
        segment_csv_text,
        video_label_csv_text,
    )
    from endoreview.interchange.model import Collection, Provenance, SegmentAnn, VideoLabelAnn

    evil = ['=HYPERLINK("http://x")', "@SUM(A1)", "+1", "-cmd", "\tx"]
    col = Collection(layout="t")
    for k, e in enumerate(evil):
        item = col.get_or_add(f"{e}v{k}")
        item.segments.append(SegmentAnn(0, 3, e, Provenance("x")))
        item.video_labels.append(VideoLabelAnn(e, Provenance("x")))
    (tmp_path / "s.csv").write_text(segment_csv_text(col))
    (tmp_path / "v.csv").write_text(video_label_csv_text(col))
    for f in ("s.csv", "v.csv"):
        with open(tmp_path / f, newline="") as fh:
            cells = [c for row in list(csv.reader(fh))[1:] for c in row]
        assert not [
            c for c in cells if c.startswith(("=", "+", "@", "\t")) or (c[:1] == "-" and not c[1:].isdigit())
        ]
    back = read_segment_csv(tmp_path / "s.csv")
    assert sorted(s.label for v in back.videos for s in v.segments) == sorted(evil)
    assert sorted(lab for _, lab, _ in read_video_label_csv(tmp_path / "v.csv")) == sorted(evil)


def _one_frame_coco(video: str, annotations: list[dict]) -> dict:
    """A COCO video document: frame 0 (16x16) of ``video``, one category (polyp) and ``annotations`` on it."""
    image = {
        "id": 1,
        "file_name": f"{video}/000000.jpg",
        "width": 16,
        "height": 16,
        "frame_id": 0,
        "video_id": 1,
    }
    return {"images": [image], "videos": [{"id": 1, "name": video}], "categories": [{"id": 1, "name": "polyp"}],
            "annotations": annotations}  # fmt: skip


def test_huge_track_id_is_a_named_error_and_writes_nothing(store, importer, tmp_path):
    import json

    from core_model.video import write_video

    write_video(tmp_path / "v.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=25.0)
    importer.import_videos([tmp_path / "v.mp4"])
    anns = [
        {"id": k, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "track_id": t}
        for k, t in enumerate([1, 2**70], start=1)
    ]
    (tmp_path / "a.json").write_text(json.dumps(_one_frame_coco("v", anns)))
    cursor = store.change_cursor()
    rep = importer.import_annotations(tmp_path / "a.json")
    assert rep.failed and "a.json" in rep.failed[0][1] and "track" in rep.failed[0][1], rep.failed
    assert store.labels_for_video(store.list_videos()[0].id) == []
    assert store.change_cursor() == cursor


def test_garbage_rle_in_a_manifest_or_coco_file_is_refused_naming_the_field(store, importer, tmp_path):
    import json

    from core_model.contract import rle_encode
    from core_model.video import write_video
    from endoreview.interchange.exporter import Exporter, ExportOptions
    from endoreview.store import Store
    from endoreview.store.records import NewLabel

    (tmp_path / "src").mkdir()
    write_video(tmp_path / "src" / "case.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=25.0)
    importer.import_videos([tmp_path / "src" / "case.mp4"])
    v = store.list_videos()[0]
    m = np.zeros((16, 16), np.uint8)
    m[3:9, 4:10] = 1
    store.add_labels([NewLabel(v.id, "mask", "polyp", frame=1, rle=rle_encode(m))])
    Exporter(store).export(tmp_path / "m", ExportOptions("manifest"))
    man = tmp_path / "m" / "manifest.json"
    text = man.read_text()
    good = rle_encode(m)["counts"]
    assert good in text
    man.write_text(text.replace(good, "0000"))  # counts that cover 1 pixel of 256
    other = Store.open(str(tmp_path / "other.sqlite3"), reviewer="bob")
    try:
        rep = Importer(other, work_dir=tmp_path / "w2").import_dataset(man)
        assert rep.failed and "manifest.json" in rep.failed[0][1] and "RLE" in rep.failed[0][1], rep.failed
        assert all(other.labels_for_video(x.id) == [] for x in other.list_videos())
        ok = Exporter(other).export(tmp_path / "after", ExportOptions("coco"))  # the project still exports
        assert not ok.failed
    finally:
        other.close()
    # a COCO compressed RLE whose counts underrun its size
    ann = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [16, 16], "counts": "52"}}
    (tmp_path / "u.json").write_text(json.dumps(_one_frame_coco("case", [ann])))
    rep = importer.import_annotations(tmp_path / "u.json")
    assert rep.failed and "u.json" in rep.failed[0][1] and "segmentation" in rep.failed[0][1], rep.failed
    assert store.labels_for_video(v.id) == [store.labels_for_video(v.id)[0]]  # only the label made above


def test_failed_dicom_with_the_same_identifiers_keeps_the_stored_remux(store, importer, tmp_path):
    import pydicom
    from pydicom.encaps import encapsulate

    from tests.interchange.builders import make_dicom_video

    frames = np.random.default_rng(3).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    (tmp_path / "a").mkdir()
    make_dicom_video(tmp_path / "a" / "IMG1", frames)
    first = importer.import_videos([tmp_path / "a" / "IMG1"])
    assert len(first.videos_created) == 1
    video = store.get_video(first.videos_created[0])
    remux = importer.library.resolve_path(video)
    before = remux.read_bytes()
    ds = pydicom.dcmread(tmp_path / "a" / "IMG1")
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01garbage-not-h264" * 4])
    (tmp_path / "b").mkdir()
    ds.save_as(tmp_path / "b" / "IMG1-copy", enforce_file_format=True)
    bad = importer.import_videos([tmp_path / "b" / "IMG1-copy"])
    assert bad.failed and not bad.videos_created
    assert remux.read_bytes() == before and _playable(importer, store.get_video(video.id))
