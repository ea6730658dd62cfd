"""Fuzz the parsers: any input gives a result or an InterchangeError (file + reason), never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endoreview.interchange import raster
from endoreview.interchange.formats import coco, cvat, tables, voc, yolo
from endoreview.interchange.model import InterchangeError
from tests.interchange.test_formats import CVAT_DOC

FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "image_id",
                    "category_id",
                    "bbox",
                    "segmentation",
                    "size",
                    "counts",
                    "width",
                    "height",
                    "file_name",
                    "name",
                    "video_id",
                    "frame_id",
                    "score",
                    "track_id",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def _ok_or_interchange_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except InterchangeError as e:
        assert e.file and e.reason


@FUZZ
@given(
    images=st.lists(json_values, max_size=3),
    anns=st.lists(json_values, max_size=3),
    cats=st.lists(json_values, max_size=2),
)
def test_coco_parser_never_crashes(tmp_path, images, anns, cats):
    doc = {"images": images, "annotations": anns, "categories": cats}
    _ok_or_interchange_error(coco.parse_coco, doc, "f.json", tmp_path)


@FUZZ
@given(
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    ann=st.fixed_dictionaries(
        {
            "id": st.integers(),
            "image_id": st.sampled_from([1, 2]),
            "category_id": st.sampled_from([1, 3]),
            "bbox": st.lists(st.floats(-50, 80), min_size=0, max_size=5),
            "segmentation": st.one_of(
                st.lists(st.lists(st.floats(-5, 50), max_size=10), max_size=2),
                st.fixed_dictionaries(
                    {
                        "size": st.lists(st.integers(0, 41), max_size=3),
                        "counts": st.one_of(st.text(max_size=20), st.lists(st.integers(-2, 900), max_size=6)),
                    }
                ),
            ),
        }
    ),
)
def test_coco_annotations_near_valid(tmp_path, w, h, ann):
    doc = {
        "images": [{"id": 1, "file_name": "a/1.jpg", "width": w, "height": h}],
        "annotations": [ann],
        "categories": [{"id": 1, "name": "p"}],
    }
    _ok_or_interchange_error(coco.parse_coco, doc, "f.json", tmp_path)


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_xml_parsers_never_crash(tmp_path, data):
    _ok_or_interchange_error(voc.read_voc, "x.xml", data=data)
    _ok_or_interchange_error(cvat.read_cvat_video, "x.xml", data=data)


@FUZZ
@given(cut=st.integers(0, len(CVAT_DOC)), junk=st.text(max_size=8))
def test_cvat_mutations(cut, junk):
    _ok_or_interchange_error(
        cvat.read_cvat_video, "c.xml", data=(CVAT_DOC[:cut] + junk + CVAT_DOC[cut:]).encode()
    )


@FUZZ
@given(text=st.text(alphabet="0123456789 .-e\nx,", max_size=200), w=st.integers(1, 50), h=st.integers(1, 50))
def test_yolo_lines_never_crash(text, w, h):
    _ok_or_interchange_error(yolo.parse_label_file, text, "l.txt", w, h, ["a", "b"], 0, [])


@FUZZ
@given(text=st.text(max_size=200))
def test_tables_never_crash(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text("video,start_frame,end_frame,label\n" + text, encoding="utf-8")
    _ok_or_interchange_error(tables.read_segment_csv, p)
    p.write_text(text, encoding="utf-8")
    _ok_or_interchange_error(tables.read_clip_list, p)
    _ok_or_interchange_error(tables.read_pretrain_csv, p)
    _ok_or_interchange_error(tables.read_video_label_csv, p)


@FUZZ
@given(data=st.binary(max_size=200))
def test_image_decoder_never_crashes(data):
    _ok_or_interchange_error(raster.decode_image, data, "m.png")


@FUZZ
@given(
    rle=st.text(alphabet="0123456789, -", max_size=30),
    left=st.integers(-3, 12),
    top=st.integers(-3, 12),
    bw=st.integers(0, 6),
    bh=st.integers(0, 6),
)
def test_cvat_rle_never_crashes(rle, left, top, bw, bh):
    _ok_or_interchange_error(cvat.cvat_rle_decode, rle, left, top, bw, bh, 10, 10, "c.xml", 1)


def test_coco_file_level_garbage(tmp_path):
    for text in ("", "[]", "null", json.dumps({"images": 3, "categories": []}), "\xff\xfe"):
        p = tmp_path / "g.json"
        p.write_text(text, encoding="latin-1")
        _ok_or_interchange_error(coco.read_coco, p)


def test_found_by_fuzzing(tmp_path):
    """Inputs hypothesis once found crashing the parsers (kept as regression cases)."""
    doc = {
        "images": [{"id": [1], "file_name": "a.jpg", "width": 2, "height": 2}],
        "annotations": [],
        "categories": [],
    }
    _ok_or_interchange_error(coco.parse_coco, doc, "f.json", tmp_path)
    _ok_or_interchange_error(
        cvat.read_cvat_video, "c.xml", data=CVAT_DOC.replace('encoding="utf-8"', 'encoding="Autf-8"').encode()
    )
    p = tmp_path / "t.csv"
    p.write_bytes(b"video,start_frame,end_frame,label\n\r0")
    _ok_or_interchange_error(tables.read_segment_csv, p)


@pytest.fixture(scope="module")
def kvasir_root(tmp_path_factory):
    from tests.interchange.builders import make_kvasir

    root = tmp_path_factory.mktemp("kv") / "Kvasir-SEG"
    make_kvasir(root, n=1)
    return root


@FUZZ
@given(doc=json_values)
def test_kvasir_bbox_json_never_crashes(kvasir_root, doc):
    from endoreview.interchange.layouts.simple import read_kvasir

    name = next((kvasir_root / "images").iterdir()).stem
    (kvasir_root / "kavsir_bboxes.json").write_text(json.dumps({name: doc}, allow_nan=True))
    _ok_or_interchange_error(read_kvasir, kvasir_root)


CVAT_IMAGES = (
    '<annotations><version>1.1</version><image id="4" name="f.png" width="40" height="30">'
    '<box label="polyp" xtl="1" ytl="2" xbr="11" ybr="12"/><polygon label="p" points="1,1;5,1;5,5"/>'
    '<mask label="polyp" rle="1, 3" left="5" top="6" width="2" height="2"/></image></annotations>'
)


@FUZZ
@given(cut=st.integers(0, len(CVAT_IMAGES)), junk=st.text(max_size=8))
def test_cvat_images_mutations(cut, junk):
    _ok_or_interchange_error(
        cvat.read_cvat_video, "c.xml", data=(CVAT_IMAGES[:cut] + junk + CVAT_IMAGES[cut:]).encode()
    )
