"""Public dataset layouts exactly as they ship (small fixtures reproducing each layout and its quirks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core_model.contract import rle_decode
from endoreview.interchange import raster
from endoreview.interchange.detect import detect_folder, read_path
from endoreview.interchange.layouts import cvc
from endoreview.interchange.model import InterchangeError
from tests.interchange.builders import disk, frame_image, make_cvc, make_kvasir, voc, write_img, zip_folder


@pytest.fixture(scope="module")
def cvc_tif(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvc") / "CVC-ClinicDB"
    truth = make_cvc(root)
    return root, truth


def test_cvc_groups_listed_sequences_and_keeps_unassigned_runs(cvc_tif):
    root, truth = cvc_tif
    assert detect_folder(root.parent) == "cvc"
    col = read_path(root.parent)
    names = [v.name for v in col.videos]
    assert "cvc_104_23" in names and "cvc_1_25" in names and "cvc_318_25" in names
    assert sum(v.num_frames for v in col.videos) == 612  # nothing dropped
    unassigned = [v for v in col.videos if v.split == "unassigned"]
    assert [v.name for v in unassigned] == [
        f"cvc_unassigned_{a}_{b}" for a, b in ((152, 177), (278, 317), (384, 428), (504, 528), (547, 571))
    ]
    covered = {
        n
        for v in col.videos
        if v.split != "unassigned"
        for n in range(v.metadata["first_frame_1based"], v.metadata["first_frame_1based"] + v.num_frames)
    }
    assert len(covered) == 451
    seq = col.video("cvc_104_23")
    assert (
        seq.split == "train"
        and seq.frame_files[0].name == "104.tif"
        and seq.frame_files[-1].name == "126.tif"
    )
    assert col.video("cvc_1_25").split == "test"
    assert col.video("cvc_51_17").metadata["endofm_splits"] == ["train", "test"]
    # 1-based file 104 is frame 0 of its sequence; masks thresholded from dozens of grey levels
    by_frame = {m.frame: rle_decode(m.rle) for m in seq.masks}
    for k in (0, 5, 22):
        n = 104 + k
        if truth[n].any():
            assert np.array_equal(by_frame[k], truth[n])
        else:
            assert k not in by_frame
    assert all("1-based" in m.provenance.field for m in seq.masks)


def test_cvc_png_variant_inside_zip_with_macosx(tmp_path):
    src = tmp_path / "src"
    make_cvc(src / "PNG", n=612, size=8, ext=".png")
    z = zip_folder(src, tmp_path / "CVC-ClinicDB.zip", arc_root="CVC-ClinicDB")
    col = read_path(z, work_dir=tmp_path / "work")
    assert sum(v.num_frames for v in col.videos) == 612
    assert not any("__MACOSX" in str(f) for v in col.videos for f in v.frame_files)
    assert col.video("cvc_200_6").frame_files[0].name == "200.png"


def test_cvc_mask_for_missing_frame_and_missing_sequence_frame(tmp_path):
    root = tmp_path / "c"
    make_cvc(root, n=30, size=8)
    write_img(root / "Ground Truth" / "31.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(InterchangeError, match="31.tif.*does not exist"):
        cvc.read_cvc(root, sequences=[(1, 25)])
    (root / "Ground Truth" / "31.tif").unlink()
    with pytest.raises(InterchangeError, match="lacks frame"):
        cvc.read_cvc(root)  # the full list needs 612 frames
    col = cvc.read_cvc(root, sequences=[(1, 25)])
    assert [v.name for v in col.videos] == ["cvc_1_25", "cvc_unassigned_26_30"]


def test_zip_entry_escaping_folder_is_refused(tmp_path):
    import zipfile

    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok/a.txt", "x")
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(InterchangeError, match="escapes"):
        read_path(z, work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.txt"))


def _kumc(root, *, processed=False):
    vids = {"train2019": ["1", "2"], "val2019": ["7"]}
    for split, videos in vids.items():
        for v in videos:
            for k in range(1, 5):
                name = f"{k}" if processed else f"{v}_{k * 10}"
                write_img(root / split / "Image" / v / f"{name}.jpg", frame_image(32, 40, k))
                if k != 3:
                    box = ("adenomatous" if v != "2" else "hyperplastic", 3 + k, 4, 20 + k, 30)
                    (root / split / "Annotation" / v).mkdir(parents=True, exist_ok=True)
                    (root / split / "Annotation" / v / f"{name}.xml").write_text(
                        voc(f"{name}.jpg", 40, 32, [box])
                    )
    return root


def test_kumc_original_layout(tmp_path):
    _kumc(tmp_path / "PolypsSet")
    assert detect_folder(tmp_path) == "kumc"
    col = read_path(tmp_path)
    assert col.layout == "kumc-original"
    v = col.video("train2019/1")
    assert v.split == "train" and v.num_frames == 4
    assert [b.frame for b in v.boxes] == [0, 1, 3]  # frame 2 (k=3) has no XML: unlabelled
    assert v.boxes[0].bbox == (3.0, 3.0, 21.0, 30.0)  # VOC 1-based inclusive -> 0-based exclusive
    assert col.video("val2019/7").split == "val"
    assert {b.label for b in col.video("train2019/2").boxes} == {"hyperplastic"}


def test_kumc_processed_layout_with_imagesets(tmp_path):
    root = _kumc(tmp_path / "processed", processed=True)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "train.txt").write_text(
        "".join(f"{v} 0 {n} 4\n" for v in ("1", "2") for n in range(1, 5))
    )
    (root / "ImageSets" / "val.txt").write_text("".join(f"7 0 {n} 4\n" for n in range(1, 5)))
    col = read_path(tmp_path)
    assert col.layout == "kumc-processed"
    v = col.video("train2019/1")
    assert [f.name for f in v.frame_files] == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert [b.frame for b in v.boxes] == [0, 1, 3]  # 1-based names -> 0-based frames
    (root / "ImageSets" / "val.txt").write_text("7 0 9 4\n")
    with pytest.raises(InterchangeError) as e:
        read_path(tmp_path)
    assert e.value.line == 1 and "val.txt" in e.value.file


def test_kumc_xml_without_image(tmp_path):
    root = _kumc(tmp_path / "PolypsSet")
    (root / "train2019" / "Annotation" / "1" / "1_99.xml").write_text(voc("1_99.jpg", 40, 32, []))
    with pytest.raises(InterchangeError, match="1_99.xml.*no image"):
        read_path(tmp_path)


def test_kvasir_seg_with_jpeg_masks_and_bbox_json(tmp_path):
    truth = make_kvasir(tmp_path / "Kvasir-SEG")
    assert detect_folder(tmp_path) == "kvasir"
    col = read_path(tmp_path)
    assert len(col.videos) == 3
    for name, (m, box) in truth.items():
        v = col.video(name)
        assert v.num_frames == 1 and (v.height, v.width) == m.shape
        assert raster.iou(rle_decode(v.masks[0].rle), m) > 0.97
        assert v.boxes[0].bbox == tuple(float(c) for c in box)
        assert v.boxes[0].provenance.field == f"{name}.bbox[0]"
    doc = json.loads((tmp_path / "Kvasir-SEG" / "kavsir_bboxes.json").read_text())
    doc["nonexistent"] = doc[next(iter(doc))]
    (tmp_path / "Kvasir-SEG" / "kavsir_bboxes.json").write_text(json.dumps(doc))
    with pytest.raises(InterchangeError) as e:
        read_path(tmp_path)
    assert e.value.field == "nonexistent"


def test_polypdiag_splits(tmp_path):
    root = tmp_path / "PolypDiag"
    (root / "videos").mkdir(parents=True)
    (root / "splits").mkdir()
    for n in ("a", "b", "c", "extra"):
        (root / "videos" / f"{n}.mp4").write_bytes(b"x")
    (root / "splits" / "train.txt").write_text("a.mp4,1\nb.mp4,0\n")
    (root / "splits" / "val.txt").write_text("c.mp4,1\n")
    col = read_path(root)
    assert [(v.name, v.split, [lab.label for lab in v.video_labels]) for v in col.videos] == [
        ("a", "train", ["abnormal"]),
        ("b", "train", ["normal"]),
        ("c", "val", ["abnormal"]),
        ("extra", "unassigned", []),
    ]
    (root / "splits" / "val.txt").write_text("c.mp4,1\nmissing.mp4,0\n")
    with pytest.raises(InterchangeError) as e:
        read_path(root)
    assert e.value.line == 2 and "val.txt" in e.value.file
    (root / "splits" / "val.txt").write_text("../../outside.mp4,0\n")
    with pytest.raises(InterchangeError, match="escapes"):
        read_path(root)


def test_sun_seg_case_folders(tmp_path):
    root = tmp_path / "SUN-SEG" / "TrainDataset"
    for case in ("case1", "case2"):
        for k in range(1, 4):
            stem = f"{case}_image{k:04d}"
            write_img(root / "Frame" / case / f"{stem}.jpg", frame_image(24, 30, k))
            if k > 1:
                write_img(
                    root / "GT" / case / f"{stem}.png", (disk(24, 30, 15, 12, 5) * 255).astype(np.uint8)
                )
    col = read_path(root)
    assert col.layout == "case-folders"
    v = col.video("case2")
    assert v.num_frames == 3 and [m.frame for m in v.masks] == [1, 2]
    whole = read_path(root.parent)  # the SUN-SEG root: every */Frame tree
    assert [(x.name, x.split) for x in whole.videos] == [
        ("TrainDataset/case1", "train"),
        ("TrainDataset/case2", "train"),
    ]
    write_img(root / "GT" / "case1" / "case1_image0009.png", np.zeros((24, 30), np.uint8))
    with pytest.raises(InterchangeError, match="no matching frame"):
        read_path(root)


def test_mask_size_differs_from_frame(tmp_path):
    root = tmp_path / "ds"
    write_img(root / "Frame" / "c" / "f1.jpg", frame_image(40, 60, 1))
    write_img(root / "GT" / "c" / "f1.png", (disk(20, 30, 15, 10, 5) * 255).astype(np.uint8))
    col = read_path(root)
    assert rle_decode(col.video("c").masks[0].rle).shape == (40, 60)
    assert any("resized" in i.reason for i in col.issues)
    write_img(root / "GT" / "c" / "f1.png", (disk(30, 30, 15, 10, 5) * 255).astype(np.uint8))
    with pytest.raises(InterchangeError, match="f1.png.*aspect"):
        read_path(root)


def test_pretrain_lists(tmp_path):
    for k in range(1, 6):
        write_img(tmp_path / "indexed" / "case9" / f"img_{k:05d}.jpg", frame_image(16, 16, k))
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "00001.mp4").write_bytes(b"x")
    (tmp_path / "train.csv").write_text("clips/00001.mp4,-1\n")
    col = read_path(tmp_path / "train.csv")
    assert [v.source.name for v in col.videos] == ["00001.mp4"]
    (tmp_path / "sun_seg.txt").write_text("indexed/case9 1 3 -1\nindexed/case9 4 2 -1\n")
    col = read_path(tmp_path / "sun_seg.txt")
    v = col.videos[0]
    assert v.num_frames == 5 and [(s.start, s.end) for s in v.segments] == [(0, 3), (3, 5)]
    (tmp_path / "sun_seg.txt").write_text("indexed/case9 4 3 -1\n")
    with pytest.raises(InterchangeError, match="has 5 frames"):
        read_path(tmp_path / "sun_seg.txt")
