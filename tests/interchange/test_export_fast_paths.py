"""The procedure-scale export paths give what the slow exact computations give: CVAT's row-major mask runs built
from COCO's runs (never decoding the mask) against decoding the mask and encoding its box row by row."""

from __future__ import annotations

import numpy as np

from core_model.contract import rle_counts, rle_decode, rle_encode
from endoreview.interchange.formats import cvat


def _masks(rng: np.random.Generator):
    """Masks of every shape the conversion has cases for: noise, rectangles (runs over column ends: a whole
    column and the top of the next), one column, one row, one pixel, the whole frame, corners."""
    for i in range(1500):
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
    assert n > 1000


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
