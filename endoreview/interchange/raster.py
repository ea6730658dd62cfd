"""Mask helpers: COCO RLE, polygons (exact pixel-edge tracing), reading and binarising real-world mask images.

Documented rules (docs/interchange.md):

* **Binarising.** Colour masks are reduced to their per-pixel maximum over the colour channels (an alpha channel is
  ignored). A mask whose largest value is 1 is taken as 0/1; otherwise a pixel is foreground when it is at least half
  the type's range (128 for 8-bit, 32768 for 16-bit). This handles JPEG-compressed masks and masks with dozens of grey
  levels at the anti-aliased rim.
* **Size mismatch.** A mask whose size differs from its frame is resized with nearest-neighbour interpolation when
  both aspect ratios agree within 2 % (reported as a warning); otherwise the unit fails with an error naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from endoreview.interchange.model import InterchangeError, Issue

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
ASPECT_TOLERANCE = 0.02


# COCO RLE: core_model.contract (rle_encode / rle_decode / rle_normalise), the one codec.


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def rle_bbox_area(rle: dict) -> tuple[tuple[float, float, float, float] | None, int]:
    """(:func:`mask_bbox`, pixel count) of a COCO RLE mask from its runs, without decoding it (a 1080p mask is
    2 MB decoded; its runs are a few hundred numbers)."""
    from core_model.contract import rle_counts, rle_extent

    (h, _w), runs = rle_counts(rle)
    return rle_extent(h, runs)


# ----------------------------------------------------------------------------------------------------------------
# Polygons
# ----------------------------------------------------------------------------------------------------------------
def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO-style polygons (flat ``[x0, y0, x1, y1, ...]`` lists, pixel-corner coordinates) -> uint8 mask (union)."""
    from pycocotools import mask as mask_utils

    polys = [list(map(float, p)) for p in polygons if len(p) >= 6]
    if not all(np.isfinite(p).all() for p in polys):  # pycocotools crashes (SIGSEGV) or runs away on these
        raise ValueError("polygon coordinates must be finite (check them with limits.check_polygon first)")
    polys = [np.clip(p, -1.0, float(max(height, width)) + 1.0).tolist() for p in polys]
    if not polys:
        return np.zeros((height, width), np.uint8)
    rles = mask_utils.frPyObjects(polys, height, width)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles))).astype(np.uint8)


def _trace_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops along pixel edges (corner coordinates), outer boundaries clockwise on screen, holes anticlockwise."""
    fg = np.pad(np.asarray(mask, dtype=bool), 1)
    inner = fg[1:-1, 1:-1]
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(cond: np.ndarray, d0: tuple[int, int], d1: tuple[int, int]) -> None:
        rs, cs = np.nonzero(cond)
        for r, c in zip(rs.tolist(), cs.tolist()):
            edges.setdefault((c + d0[0], r + d0[1]), []).append((c + d1[0], r + d1[1]))

    add(inner & ~fg[:-2, 1:-1], (0, 0), (1, 0))  # top edge, left -> right
    add(inner & ~fg[1:-1, 2:], (1, 0), (1, 1))  # right edge, top -> bottom
    add(inner & ~fg[2:, 1:-1], (1, 1), (0, 1))  # bottom edge, right -> left
    add(inner & ~fg[1:-1, :-2], (0, 1), (0, 0))  # left edge, bottom -> top
    loops = []
    while edges:
        start = min(edges)
        loop = [start]
        prev_dir = None
        cur = start
        while True:
            outs = edges.get(cur)
            if not outs:
                break
            if len(outs) > 1 and prev_dir is not None:
                # two regions touch at a corner: turn right (keeps 4-connected regions apart)
                right = (-prev_dir[1], prev_dir[0])
                nxt = next((o for o in outs if (o[0] - cur[0], o[1] - cur[1]) == right), outs[0])
            else:
                nxt = outs[0]
            outs.remove(nxt)
            if not outs:
                del edges[cur]
            prev_dir = (nxt[0] - cur[0], nxt[1] - cur[1])
            cur = nxt
            if cur == start:
                break
            loop.append(cur)
        pts = np.asarray(loop, dtype=np.int64)
        # drop collinear vertices (keep the corners of the staircase)
        prev = np.roll(pts, 1, axis=0)
        nxt = np.roll(pts, -1, axis=0)
        cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (
            nxt[:, 0] - pts[:, 0]
        )
        pts = pts[cross != 0]
        if len(pts) >= 3:
            loops.append(pts)
    return loops


def _signed_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0].astype(float), pts[:, 1].astype(float)
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def mask_to_polygons(mask: np.ndarray) -> tuple[list[list[float]], bool]:
    """Mask -> outer boundary polygons traced along pixel edges, and whether holes were dropped.

    Polygon formats (COCO polygons, YOLO-seg, CVAT polygons) cannot express holes; callers list them as dropped.
    """
    polys: list[list[float]] = []
    had_holes = False
    for loop in _trace_loops(mask):
        if _signed_area(loop) > 0:
            polys.append([float(v) for v in loop.reshape(-1)])
        else:
            had_holes = True
    return polys, had_holes


def polygon_area(flat: list[float]) -> float:
    pts = np.asarray(flat, dtype=float).reshape(-1, 2)
    return abs(_signed_area(pts))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


# ----------------------------------------------------------------------------------------------------------------
# Reading mask images as they ship
# ----------------------------------------------------------------------------------------------------------------
def decode_image(data: bytes, name: str | os.PathLike, *, unchanged: bool = True) -> np.ndarray:
    """Encoded image bytes -> array (cv2 channel order BGR for colour). Raises InterchangeError naming ``name``."""
    import cv2

    check_image_header(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    img = None
    if buf.size:
        try:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR)
        except cv2.error:
            img = None
    if img is None:
        raise InterchangeError(name, "not a readable image (PNG/JPEG/TIFF/BMP expected)")
    return img


def check_image_header(data: bytes | str | os.PathLike, name: str | os.PathLike) -> tuple[int, int] | None:
    """The (width, height) an encoded image declares, refused before decoding when it exceeds the import limits
    (:mod:`endoreview.interchange.limits`): a 261 KB PNG can declare 16384 x 16384 pixels (2.6 GB decoded). None
    when PIL cannot read the header (OpenCV then decodes and reports the file)."""
    import io
    import warnings

    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        raise InterchangeError(
            name, "declares more pixels than the import limit (refused as a decompression bomb)"
        ) from None
    except Exception:
        return None
    from endoreview.interchange import limits

    return limits.check_image_size(name, w, h)


def read_image(path: str | os.PathLike, *, unchanged: bool = True) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InterchangeError(path, f"cannot be read ({e.strerror or e})") from None
    return decode_image(data, path, unchanged=unchanged)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, reading only its header when PIL can."""
    size = check_image_header(path, path)
    if size is not None:
        return size[1], size[0]
    img = read_image(path)
    return int(img.shape[0]), int(img.shape[1])


def binarize(img: np.ndarray) -> np.ndarray:
    """Real-world mask image -> bool ``[H, W]`` per the documented rule (channel max, 0/1 or half-range threshold)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., :3].max(axis=2) if a.shape[2] >= 3 else a[..., 0]
    if a.dtype == bool:
        return a
    vmax = int(a.max()) if a.size else 0
    if vmax <= 1:
        return a >= 1
    if np.issubdtype(a.dtype, np.floating):
        return a >= 0.5 * (1.0 if vmax <= 1.0 else 255.0)
    half = (np.iinfo(a.dtype).max + 1) // 2 if np.issubdtype(a.dtype, np.integer) else 128
    return a >= half


def label_map(img: np.ndarray) -> np.ndarray:
    """Single-channel label-index mask (values are class indices); colour images are rejected by the caller."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.int64)


def fit_to_frame(
    mask: np.ndarray, height: int, width: int, file: str | os.PathLike, issues: list[Issue] | None
) -> np.ndarray:
    """Apply the size-mismatch rule: nearest-neighbour resize when aspect ratios agree within 2 %, else error."""
    mh, mw = mask.shape[:2]
    if (mh, mw) == (height, width):
        return mask
    ar_mask, ar_frame = mw / mh, width / height
    if abs(ar_mask - ar_frame) / ar_frame > ASPECT_TOLERANCE:
        raise InterchangeError(
            file,
            f"mask is {mw}x{mh} but its frame is {width}x{height} (different aspect ratio; "
            "cannot be resized safely)",
        )
    import cv2

    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    if issues is not None:
        issues.append(
            Issue(
                str(file), f"mask is {mw}x{mh} but its frame is {width}x{height}; resized (nearest neighbour)"
            )
        )
    return resized.astype(mask.dtype) if mask.dtype != bool else resized.astype(bool)
