"""Annotation formats: parsing, writing, round-trip fidelity, malformed input named by file + line/field."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from core_model.contract import rle_decode, rle_encode
from endoreview.interchange import raster
from endoreview.interchange.formats import coco, cvat, maskdir, tables, voc, yolo
from endoreview.interchange.model import BoxAnn, Collection, InterchangeError, MaskAnn, Provenance, VideoItem
from tests.interchange.builders import disk, frame_image, grey_rim_mask, write_img

P = Provenance("test")


def ring(h, w):
    m = disk(h, w, w / 2, h / 2, min(h, w) / 3)
    return m & (1 - disk(h, w, w / 2, h / 2, min(h, w) / 8))


# ------------------------------------------------------------------------------------------------ raster rules
def test_polygon_trace_is_exact_and_reports_holes():
    m = disk(60, 80, 30, 25, 17) | disk(60, 80, 65, 45, 6)
    polys, holes = raster.mask_to_polygons(m)
    assert len(polys) == 2 and not holes
    assert np.array_equal(raster.polygons_to_mask(polys, 60, 80), m)
    _, holes = raster.mask_to_polygons(ring(60, 80))
    assert holes


def test_binarize_grey_levels_jpeg_three_channel_and_01():
    m = disk(50, 50, 25, 25, 12)
    grey = grey_rim_mask(m)
    assert len(np.unique(grey)) > 12  # dozens of grey levels, as CVC ships
    assert np.array_equal(raster.binarize(grey), m.astype(bool))
    ok, buf = cv2.imencode(
        ".jpg", np.repeat((m * 255)[..., None], 3, 2).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 60]
    )
    jpeg = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert jpeg.ndim == 3 and len(np.unique(jpeg)) > 2
    assert raster.iou(raster.binarize(jpeg), m) > 0.97
    assert np.array_equal(raster.binarize(m), m.astype(bool))


def test_mask_size_rule_resizes_same_aspect_and_rejects_other(tmp_path):
    issues = []
    m = disk(20, 30, 15, 10, 6).astype(bool)
    out = raster.fit_to_frame(m, 40, 60, "m.png", issues)
    assert out.shape == (40, 60) and issues and "resized" in issues[0].reason
    with pytest.raises(InterchangeError, match="m.png.*aspect"):
        raster.fit_to_frame(m, 40, 40, "m.png", [])


# ------------------------------------------------------------------------------------------------ COCO
def _coco_doc():
    m = disk(40, 50, 20, 20, 9)
    rle = rle_encode(m)
    from pycocotools import mask as mu

    unc = {"size": [40, 50], "counts": []}
    flat = m.reshape(-1, order="F")
    val, run = 0, 0
    for px in flat:
        if px == val:
            run += 1
        else:
            unc["counts"].append(run)
            val, run = px, 1
    unc["counts"].append(run)
    assert np.array_equal(mu.decode(mu.frPyObjects(unc, 40, 50)), m)
    return m, {
        "images": [
            {"id": 1, "file_name": "caseA/0001.jpg", "width": 50, "height": 40},
            {"id": 2, "file_name": "caseA/0002.jpg", "width": 50, "height": 40},
        ],
        "annotations": [
            {"id": 1, "image_id": 2, "category_id": 7, "bbox": [1, 2, 10, 5]},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 7,
                "segmentation": rle,
                "bbox": [0, 0, 1, 1],
                "score": 0.5,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "segmentation": unc,
                "iscrowd": 1,
                "bbox": [0, 0, 1, 1],
            },
            {
                "id": 4,
                "image_id": 2,
                "category_id": 7,
                "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]],
                "bbox": [5, 5, 10, 10],
            },
        ],
        "categories": [{"id": 7, "name": "polyp"}],
    }


def test_coco_reads_boxes_polygons_and_both_rle_forms(tmp_path):
    m, doc = _coco_doc()
    p = tmp_path / "a.json"
    p.write_text(json.dumps(doc))
    col = coco.read_coco(p)
    v = col.video("caseA")
    assert v.num_frames == 2 and [f.name for f in v.frame_files] == ["0001.jpg", "0002.jpg"]
    masks = {(a.frame, a.provenance.field): a for a in v.masks}
    assert np.array_equal(rle_decode(masks[(0, "annotations[1]")].rle), m)
    assert masks[(0, "annotations[1]")].score == 0.5
    assert np.array_equal(rle_decode(masks[(1, "annotations[2]")].rle), m)
    sq = rle_decode(masks[(1, "annotations[3]")].rle)
    assert sq.sum() == 100 and sq[5:15, 5:15].all()
    assert (1, (1.0, 2.0, 11.0, 7.0)) in [(b.frame, b.bbox) for b in v.boxes]


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d["annotations"][0].pop("image_id"), "annotations[0]"),
        (lambda d: d["annotations"][0].update(bbox=[45, 1, 30, 5]), "annotations[0].bbox"),
        (lambda d: d["annotations"][0].update(category_id=99), "annotations[0].category_id"),
        (lambda d: d["images"][0].update(file_name="../../etc/passwd"), "images[0].file_name"),
        (
            lambda d: d["annotations"][1]["segmentation"].update(size=[41, 50]),
            "annotations[1].segmentation.size",
        ),
    ],
)
def test_coco_malformed_names_file_and_field(tmp_path, mutate, where):
    _, doc = _coco_doc()
    mutate(doc)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InterchangeError) as e:
        coco.read_coco(p)
    assert e.value.file == str(p) and e.value.field == where


def test_coco_json_syntax_error_has_line(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{\n "images": [\n}')
    with pytest.raises(InterchangeError) as e:
        coco.read_coco(p)
    assert e.value.line == 3


def _collection(h=48, w=64, n=6):
    v = VideoItem("vid", width=w, height=h, num_frames=n)
    for f in range(n):
        m = disk(h, w, 20 + 3 * f, 24, 8 + f)
        if f == 2:
            m = ring(h, w)
        v.masks.append(MaskAnn(f, "polyp", rle_encode(m), P, track_id=1, score=0.9 if f == 3 else None))
        v.boxes.append(BoxAnn(f, "polyp", (2.0 + f, 3.0, 30.5 + f, 40.0), P, track_id=1))
    v.boxes.append(BoxAnn(1, "adenoma", (0.0, 0.0, 1.0, 48.0), P, track_id=None))  # degenerate at the edge
    return Collection(videos=[v])


def test_coco_rle_round_trip_is_pixel_exact_and_polygons_iou(tmp_path):
    col = _collection()
    doc, dropped = coco.coco_document(col)
    p = tmp_path / "out.json"
    p.write_text(json.dumps(doc))
    back = coco.read_coco(p)
    v0, v1 = col.videos[0], back.video("vid")
    assert sorted((m.frame, m.rle["counts"]) for m in v0.masks) == sorted(
        (m.frame, m.rle["counts"]) for m in v1.masks
    )
    assert sorted((b.frame, b.label, b.bbox, b.track_id) for b in v0.boxes) == sorted(
        (b.frame, b.label, b.bbox, b.track_id) for b in v1.boxes
    )
    assert any(m.score == 0.9 for m in v1.masks)
    polydoc, pdropped = coco.coco_polygon_document(doc)
    p.write_text(json.dumps(polydoc))
    poly = coco.read_coco(p).video("vid")
    for a, b in zip(sorted(v0.masks, key=lambda m: m.frame), sorted(poly.masks, key=lambda m: m.frame)):
        assert raster.iou(rle_decode(a.rle), rle_decode(b.rle)) >= 0.98 or a.frame == 2
    assert any("holes" in d for d in pdropped)


# ------------------------------------------------------------------------------------------------ VOC
def test_voc_is_one_based_inclusive_and_round_trips(tmp_path):
    text, dropped = voc.voc_xml("f.jpg", 64, 48, [("polyp", (0.0, 5.0, 10.0, 20.0), None)])
    p = tmp_path / "f.xml"
    p.write_text(text)
    assert "<xmin>1</xmin>" in text and "<xmax>10</xmax>" in text
    info, objs, _ = voc.read_voc(p)
    assert info["width"] == 64 and objs[0][0] == "polyp" and objs[0][1] == (0.0, 5.0, 10.0, 20.0)
    assert not dropped


def test_voc_degenerate_edge_box_is_widened_and_outside_box_rejected(tmp_path):
    p = tmp_path / "e.xml"
    p.write_text(
        voc.voc_xml("e.jpg", 64, 48, [])[0].replace(
            "</annotation>",
            "<object><name>polyp</name><bndbox><xmin>65</xmin><ymin>10</ymin><xmax>65</xmax><ymax>30</ymax></bndbox></object></annotation>",
        )
    )
    _, objs, issues = voc.read_voc(p)
    x0, y0, x1, y1 = objs[0][1]
    assert (
        x1 <= 64 and x1 - x0 == 1 and any("degenerate" in i.reason or "clipped" in i.reason for i in issues)
    )
    p.write_text(
        p.read_text()
        .replace("<xmin>65</xmin>", "<xmin>100</xmin>")
        .replace("<xmax>65</xmax>", "<xmax>120</xmax>")
    )
    with pytest.raises(InterchangeError, match="outside"):
        voc.read_voc(p)


def test_voc_broken_xml_reports_line(tmp_path):
    p = tmp_path / "b.xml"
    p.write_text("<annotation>\n<size>\n<width>3</width>\n</annotation>\n")
    with pytest.raises(InterchangeError) as e:
        voc.read_voc(p)
    assert e.value.line == 4 and "does not parse" in e.value.reason


# ------------------------------------------------------------------------------------------------ YOLO
def test_yolo_boxes_within_one_pixel_and_seg_iou(tmp_path):
    col = _collection()
    v = col.videos[0]
    idx = {"polyp": 0, "adenoma": 1}
    (tmp_path / "data.yaml").write_text("names: [polyp, adenoma]\n")
    for f in range(v.num_frames):
        write_img(tmp_path / "images" / "vid" / f"{f:06d}.jpg", frame_image(48, 64, f))
        det, _ = yolo.yolo_label_text([b for b in v.boxes if b.frame == f], [], 64, 48, idx, "det")
        (tmp_path / "labels" / "vid").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "vid" / f"{f:06d}.txt").write_text(det)
    back = yolo.read_yolo(tmp_path).video("vid")
    for a in v.boxes:
        b = next(b for b in back.boxes if b.frame == a.frame and b.label == a.label)
        assert max(abs(x - y) for x, y in zip(a.bbox, b.bbox)) <= 1.0
    seg, dropped = yolo.yolo_label_text([], v.masks[:2], 64, 48, idx, "seg")
    bs, ms = yolo.parse_label_file(seg, "s.txt", 64, 48, ["polyp", "adenoma"], 0, [])
    assert raster.iou(rle_decode(ms[0].rle), rle_decode(v.masks[0].rle)) >= 0.98


def test_yolo_label_without_image_and_bad_line(tmp_path):
    write_img(tmp_path / "images" / "a.jpg", frame_image(10, 10, 0))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(InterchangeError) as e:
        yolo.read_yolo(tmp_path)
    assert e.value.line == 1
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InterchangeError, match="b.txt.*no matching image"):
        yolo.read_yolo(tmp_path)


# ------------------------------------------------------------------------------------------------ CVAT
CVAT_DOC = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>clip</name><size>10</size><start_frame>0</start_frame><stop_frame>9</stop_frame>
  <original_size><width>40</width><height>30</height></original_size></task></meta>
  <track id="3" label="polyp" source="manual">
    <box frame="2" outside="0" occluded="0" keyframe="1" xtl="0" ytl="0" xbr="10" ybr="10" z_order="0"/>
    <box frame="6" outside="0" occluded="0" keyframe="1" xtl="8" ytl="4" xbr="18" ybr="14" z_order="0"/>
    <box frame="8" outside="1" occluded="0" keyframe="1" xtl="8" ytl="4" xbr="18" ybr="14" z_order="0"/>
  </track>
  <track id="4" label="polyp" source="manual">
    <mask frame="1" outside="0" occluded="0" keyframe="1" rle="1, 3" left="5" top="6" width="2" height="2" z_order="0"/>
  </track>
</annotations>
"""


def test_cvat_interpolates_keyframes_and_honours_outside(tmp_path):
    p = tmp_path / "c.xml"
    p.write_text(CVAT_DOC)
    v = cvat.read_cvat_video(p).video("clip")
    boxes = {b.frame: b.bbox for b in v.boxes}
    assert sorted(boxes) == [2, 3, 4, 5, 6, 7]
    assert boxes[4] == (4.0, 2.0, 14.0, 12.0)  # halfway between the keyframes
    assert boxes[7] == (8.0, 4.0, 18.0, 14.0)
    assert all(b.track_id == 3 for b in v.boxes)
    masks = {m.frame: rle_decode(m.rle) for m in v.masks}
    assert sorted(masks) == list(range(1, 10))  # a mask persists to the end of the task
    assert masks[1].sum() == 3 and masks[1][6, 5] == 0 and masks[1][6, 6] == 1 and masks[1][7, 5] == 1


def test_cvat_mask_round_trip_pixel_exact(tmp_path):
    col = _collection()
    v = col.videos[0]
    xml, dropped = cvat.cvat_video_xml("vid", 64, 48, 6, v.boxes, v.masks, ["adenoma", "polyp"])
    p = tmp_path / "o.xml"
    p.write_text(xml)
    back = cvat.read_cvat_video(p).video("vid")
    assert sorted((m.frame, m.rle["counts"], m.track_id) for m in back.masks) == sorted(
        (m.frame, m.rle["counts"], m.track_id) for m in v.masks
    )
    assert sorted((b.frame, b.bbox) for b in back.boxes) == sorted((b.frame, b.bbox) for b in v.boxes)
    assert "scores" in dropped


@pytest.mark.parametrize(
    "bad, reason",
    [
        ('rle="1, 3"', 'rle="0, 2, 1, 9"'),
        ('<box frame="6"', '<box frame="60"'),
        ("</annotations>", "</annotation>"),
    ],
)
def test_cvat_malformed(tmp_path, bad, reason):
    p = tmp_path / "c.xml"
    p.write_text(CVAT_DOC.replace(bad, reason))
    with pytest.raises(InterchangeError) as e:
        cvat.read_cvat_video(p)
    assert e.value.file == str(p) and e.value.line is not None


# ------------------------------------------------------------------------------------------------ CSV and lists
def test_segment_csv_round_trip_and_errors(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("video,start_frame,end_frame,label\nv1,0,10,polyp\nv2,5,6,bleeding\n")
    col = tables.read_segment_csv(p)
    assert [(s.start, s.end, s.label, s.provenance.line) for s in col.video("v1").segments] == [
        (0, 10, "polyp", 2)
    ]
    assert tables.segment_csv_text(col) == p.read_text()
    p.write_text("video,start_frame,end_frame,label\nv1,0,10,polyp\nv1,7,7,polyp\n")
    with pytest.raises(InterchangeError) as e:
        tables.read_segment_csv(p)
    assert e.value.line == 3
    p.write_text("video,start,end,label\n")
    with pytest.raises(InterchangeError, match="header"):
        tables.read_segment_csv(p)
    p.write_text("video,start_frame,end_frame,label\nv1,0,99,polyp\n")
    with pytest.raises(InterchangeError, match="has 50 frames"):
        tables.read_segment_csv(p, num_frames={"v1": 50})


def test_clip_list_converts_one_based(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("case1 1 150 -1\ncase1 151 30 -1\n")
    lines = tables.read_clip_list(p, base=1)
    assert [(c.start, c.count) for c in lines] == [(0, 150), (150, 30)]
    p.write_text("case1 0 150 -1\n")
    with pytest.raises(InterchangeError, match="first frame number 1"):
        tables.read_clip_list(p, base=1)


# ------------------------------------------------------------------------------------------------ mask folders
def test_label_map_png_round_trip_pixel_exact(tmp_path):
    col = _collection()
    v = col.videos[0]
    classes = ["background", "adenoma", "polyp"]
    idx = {c: i for i, c in enumerate(classes)}
    maskdir.write_labelmap(tmp_path, classes)
    for f in range(v.num_frames):
        img, _ = maskdir.label_png([m for m in v.masks if m.frame == f], 48, 64, idx)
        cv2.imwrite(str(tmp_path / f"{f:06d}.png"), img)
    back = maskdir.read_mask_folder(tmp_path, num_frames=6, width=64, height=48)
    assert sorted((m.frame, m.rle["counts"]) for m in back) == sorted(
        (m.frame, m.rle["counts"]) for m in v.masks
    )


def test_mask_folder_one_based_names_convert_to_zero_based(tmp_path):
    m = disk(20, 20, 10, 10, 4)
    write_img(tmp_path / "1.png", (m * 255).astype(np.uint8))
    write_img(tmp_path / "3.png", (m * 255).astype(np.uint8))
    got = maskdir.read_mask_folder(tmp_path, num_frames=3, width=20, height=20, base=1)
    assert [a.frame for a in got] == [0, 2]
    with pytest.raises(InterchangeError, match="does not exist"):
        maskdir.read_mask_folder(tmp_path, num_frames=2, width=20, height=20, base=1)


def test_palette_label_map_png_reads_indices(tmp_path):
    from PIL import Image

    lm = np.zeros((10, 12), np.uint8)
    lm[2:5, 3:7] = 2
    im = Image.fromarray(lm, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    im.save(tmp_path / "000003.png")
    maskdir.write_labelmap(tmp_path, ["background", "adenoma", "polyp"])
    got = maskdir.read_mask_folder(tmp_path, num_frames=5, width=12, height=10)
    assert [(m.frame, m.label) for m in got] == [(3, "polyp")]
    assert rle_decode(got[0].rle).sum() == 12


def test_coco_mask_and_its_own_box_stay_one_annotation(tmp_path):
    m = disk(30, 40, 20, 15, 6)
    v = VideoItem("v", width=40, height=30, num_frames=1)
    v.masks.append(MaskAnn(0, "polyp", rle_encode(m), P))
    v.boxes.append(BoxAnn(0, "polyp", raster.mask_bbox(m), P))
    v.boxes.append(BoxAnn(0, "polyp", (1.0, 1.0, 4.0, 4.0), P))
    doc, _ = coco.coco_document(Collection(videos=[v]))
    assert len(doc["annotations"]) == 2 and sum("segmentation" in a for a in doc["annotations"]) == 1
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    back = coco.read_coco(p).video("v")
    assert len(back.masks) == 1 and sorted(b.bbox for b in back.boxes) == sorted(b.bbox for b in v.boxes)


def test_cvat_for_images_reads_frames_by_image_id(tmp_path):
    p = tmp_path / "img.xml"
    p.write_text(
        "<annotations><version>1.1</version><meta><task><name>clip</name></task></meta>"
        '<image id="4" name="frame_000004.png" width="40" height="30">'
        '<box label="polyp" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12" z_order="0"/>'
        '<mask label="polyp" occluded="0" rle="1, 3" left="5" top="6" width="2" height="2" z_order="0"/>'
        "</image></annotations>"
    )
    col = cvat.read_cvat_video(p)
    v = col.video("clip")
    assert col.layout == "cvat-images" and [(b.frame, b.bbox) for b in v.boxes] == [
        (4, (1.0, 2.0, 11.0, 12.0))
    ]
    assert [m.frame for m in v.masks] == [4] and rle_decode(v.masks[0].rle).sum() == 3
    with pytest.raises(InterchangeError, match="not a frame"):
        cvat.read_cvat_video(p, num_frames=3)
