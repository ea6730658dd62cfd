"""The model contract (core_model/contract.py): one RLE codec, one home for the normalisation constants."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core_model.contract import (
    RLEError,
    rle_area,
    rle_decode,
    rle_encode,
    rle_normalise,
    rle_validate,
)

REPO = Path(__file__).resolve().parents[2]


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((0, 7), np.uint8)
    yield np.zeros((5, 4), np.uint8)
    yield np.ones((5, 4), np.uint8)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        yield (rng.random((h, w)) < rng.random()).astype(np.uint8)
    big = np.zeros((720, 1280), np.uint8)
    yy, xx = np.mgrid[:720, :1280]
    big[((yy - 300) / 150) ** 2 + ((xx - 640) / 260) ** 2 <= 1] = 1
    big[0, 0] = big[719, 1279] = 1
    yield big


def test_encode_is_byte_identical_to_pycocotools_and_round_trips():
    mask_utils = pytest.importorskip("pycocotools.mask")
    for m in _masks():
        ref = mask_utils.encode(np.asfortranarray(m))
        mine = rle_encode(m)
        assert mine["size"] == [int(v) for v in ref["size"]]
        assert mine["counts"] == ref["counts"].decode("ascii")
        assert np.array_equal(rle_decode(mine), m)
        assert rle_area(mine) == int(m.sum())
        if m.size:  # pycocotools' own decoder agrees with ours on our strings
            theirs = mask_utils.decode({"size": mine["size"], "counts": mine["counts"].encode()})
            assert np.array_equal(theirs, m)


def test_decode_accepts_bytes_and_uncompressed_counts():
    m = np.zeros((6, 5), np.uint8)
    m[1:4, 2:4] = 1
    rle = rle_encode(m)
    assert np.array_equal(rle_decode({"size": rle["size"], "counts": rle["counts"].encode()}), m)
    runs = [13, 3, 3, 3, 8]  # column-major: 2 columns + 1 row of background, 3 fg (column 2 rows 1-3), ...
    assert np.array_equal(rle_decode({"size": [6, 5], "counts": runs}), m)
    assert rle_normalise({"size": [6, 5], "counts": runs}) == rle


@pytest.mark.parametrize(
    ("rle", "field", "reason"),
    [
        ({"size": [4, 4], "counts": "0"}, "counts", "cover 0 pixels, but size [4, 4] has 16"),
        ({"size": [4, 4], "counts": [3, 4]}, "counts", "cover 7 pixels"),
        ({"size": [2, 2], "counts": [-1, 5]}, "counts", "negative"),
        ({"size": [4, 4], "counts": "01\x7f"}, "counts", "alphabet"),
        ({"size": [4, 4], "counts": "0P"}, "counts", "truncated"),
        ({"size": [4], "counts": ""}, "size", "[height, width]"),
        ({"size": ["4", 4], "counts": ""}, "size", "[height, width]"),
        ({"counts": "0"}, "size", "[height, width]"),
        ({"size": [4, 4]}, "counts", "missing"),
        ({"size": [4, 4], "counts": 16}, "counts", "string or a list"),
        ("not a dict", "size", "missing"),
    ],
)
def test_validating_decode_names_the_field_and_reason(rle, field, reason):
    with pytest.raises(RLEError) as e:
        rle_decode(rle, where="preds.jsonl line 3")
    assert e.value.field == field and reason in e.value.reason
    assert str(e.value).startswith("preds.jsonl line 3: mask RLE")
    with pytest.raises(RLEError):
        rle_validate(rle)


def test_a_mask_of_another_frame_size_is_caught_where_pycocotools_pads():
    """A 32x32 mask's counts under a 40x40 size: pycocotools decodes garbage, the contract refuses it."""
    m = np.zeros((32, 32), np.uint8)
    m[5:20, 5:20] = 1
    bad = {"size": [40, 40], "counts": rle_encode(m)["counts"]}
    with pytest.raises(RLEError, match="cover 1024 pixels"):
        rle_decode(bad)


def test_contract_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import core_model.contract as c; print(c.ENDOFM_STD)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert "0.225" in out.stdout


def test_constants_and_rle_codec_have_one_home():
    """grep: no other module writes the normalisation constants or calls pycocotools' RLE encoder/decoder."""
    const = re.compile(r"0\.485|0\.456, 0\.406|0\.229, 0\.224|0\.45, 0\.45|0\.225, 0\.225")
    # (CVAT's row-major dialect is a format adapter built on the codec: cvat_rle_encode / cvat_rle_decode)
    codec = re.compile(r"mask_utils\.(encode|area)\(|def (?!cvat_)\w*(rle_(en|de)code|(en|de)code_rle)\w*\(")
    offenders = []
    for top in ("core_model", "endoreview", "benchmarks", "scripts"):
        for p in (REPO / top).rglob("*.py"):
            if p.name == "contract.py" and p.parent.name == "core_model":
                continue
            text = p.read_text(encoding="utf-8")
            for rx in (const, codec):
                for m in rx.finditer(text):
                    offenders.append(f"{p.relative_to(REPO)}: {m.group(0)}")
    assert not offenders, offenders


def test_counts_of_every_length_parse_back_to_the_runs_written():
    """Run lengths from 0 to 2**40 (1 to 9 characters each, deltas of both signs) survive compress -> parse: both of
    the parser's paths (32-bit running sums while every number has at most 6 characters, 64-bit past that)."""
    from core_model.contract import rle_counts, rle_from_counts

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 400))
        runs = (rng.random(n) ** 6 * 2.0 ** rng.integers(1, 41, n)).astype(np.int64)
        runs[rng.random(n) < 0.1] = 0
        total = int(runs.sum())
        rle = rle_from_counts(1, total, runs)
        size, back = rle_counts(rle)
        assert size == (1, total) and np.array_equal(back, runs)


def test_a_masks_box_decodes_to_the_same_pixels_as_the_whole_frame():
    """rle_decode_box (the overlay's outline of each new frame) equals the whole-frame decode over the mask's
    columns, for masks at the frame's edges, over several columns' boundaries and empty."""
    import numpy as np

    from core_model.contract import rle_decode, rle_decode_box, rle_encode

    rng = np.random.default_rng(3)
    cases = [np.zeros((48, 64), np.uint8)]
    for _ in range(20):
        m = np.zeros((48, 64), np.uint8)
        y, x = rng.integers(0, 48), rng.integers(0, 64)
        m[y : y + rng.integers(1, 30), x : x + rng.integers(1, 30)] = 1
        m[rng.random((48, 64)) < 0.02] = 1
        cases.append(m)
    full = np.ones((48, 64), np.uint8)
    cases.append(full)
    for m in cases:
        rle = rle_encode(m)
        crop, x0, y0 = rle_decode_box(rle)
        cols = np.flatnonzero(m.any(axis=0))
        if not len(cols):
            assert crop.shape == (48, 0)
            continue
        assert (x0, y0) == (cols[0], 0) and crop.shape == (48, cols[-1] - cols[0] + 1)
        assert np.array_equal(crop, rle_decode(rle)[:, x0 : x0 + crop.shape[1]])
