"""The model contract: what a model expects and what it emits, importable without torch.

One home each for:

* **Normalisation constants.** ``IMAGENET_MEAN``/``IMAGENET_STD`` (torchvision's ImageNet statistics, our default)
  and ``ENDOFM_MEAN``/``ENDOFM_STD`` (0.45/0.225, the official Endo-FM fine-tuning configs,
  ../shared/docs/endofm-reference.md §5.1).
* **The COCO RLE codec** used for every mask in the tree (predictions, the store, the editor, interchange, training
  data). ``rle_encode(mask)`` gives ``{"size": [h, w], "counts": str}`` byte-identical to
  ``pycocotools.mask.encode`` on the Fortran-ordered mask; ``rle_decode(rle)`` accepts compressed (``str``/``bytes``)
  or uncompressed (``list``) counts and *validates*: the counts must be well-formed, non-negative and sum to
  ``h * w``, otherwise :class:`RLEError` names the field and the reason (pycocotools silently pads or truncates).
  Pure numpy (vectorised); no pycocotools needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ENDOFM_MEAN",
    "ENDOFM_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RLEError",
    "rle_area",
    "rle_counts",
    "rle_decode",
    "rle_encode",
    "rle_from_counts",
    "rle_normalise",
    "rle_validate",
]

# ----------------------------------------------------------------------------------------------------------------
# Normalisation constants (RGB, on [0, 1] pixels)
# ----------------------------------------------------------------------------------------------------------------
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
ENDOFM_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
ENDOFM_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


# ----------------------------------------------------------------------------------------------------------------
# COCO RLE
# ----------------------------------------------------------------------------------------------------------------
class RLEError(ValueError):
    """A mask RLE that does not decode: ``field`` is ``"size"`` or ``"counts"``, ``reason`` says why."""

    def __init__(self, field: str, reason: str, where: str = ""):
        self.field = field
        self.reason = reason
        self.where = where
        loc = f"{where}: " if where else ""
        super().__init__(f"{loc}mask RLE '{field}' {reason}")


def _size(rle: Any, where: str) -> tuple[int, int]:
    if not isinstance(rle, dict):
        raise RLEError(
            "size", f"is missing: expected {{'size': [h, w], 'counts': ...}}, got {type(rle).__name__}", where
        )
    size = rle.get("size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        raise RLEError("size", f"must be [height, width] integers, got {size!r:.60}", where)
    h, w = int(size[0]), int(size[1])
    if h < 0 or w < 0:
        raise RLEError("size", f"must not be negative, got {[h, w]}", where)
    return h, w


def _parse_compressed(s: bytes, where: str) -> np.ndarray:
    """COCO's compressed counts string (LEB128-like, 5 bits a char, offset 48, deltas from two runs back)."""
    if not s:
        return np.zeros(0, np.int64)
    raw = np.frombuffer(s, np.uint8).astype(np.int64) - 48
    if raw.min() < 0 or raw.max() > 63:
        raise RLEError("counts", "holds characters outside the COCO RLE alphabet ('0'..'o')", where)
    more = (raw & 0x20) != 0
    if more[-1]:
        raise RLEError("counts", "ends in the middle of a number (truncated string)", where)
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    n_chars = ends - starts + 1
    if n_chars.max() > 12:
        raise RLEError("counts", "holds a number too long to be a run length", where)
    group = np.repeat(np.arange(len(ends)), n_chars)
    pos = np.arange(len(raw)) - np.repeat(starts, n_chars)
    vals = np.zeros(len(ends), np.int64)
    np.add.at(vals, group, (raw & 0x1F) << (5 * pos))
    neg = (raw[ends] & 0x10) != 0
    vals[neg] -= np.int64(1) << (5 * n_chars[neg])
    # x[m] += x[m - 2] for m > 2: running sums over odd indices and over even indices from 2
    out = vals.copy()
    out[1::2] = np.cumsum(vals[1::2])
    if len(vals) > 2:
        out[2::2] = np.cumsum(vals[2::2])
    return out


def rle_counts(rle: dict[str, Any], where: str = "") -> tuple[tuple[int, int], np.ndarray]:
    """Validated ``((h, w), run lengths)`` of a COCO RLE (compressed or uncompressed counts)."""
    h, w = _size(rle, where)
    counts = rle.get("counts")
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise RLEError("counts", "holds non-ASCII characters", where) from None
    if isinstance(counts, (bytes, bytearray)):
        runs = _parse_compressed(bytes(counts), where)
    elif isinstance(counts, (list, tuple, np.ndarray)):
        try:
            runs = np.asarray(counts, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise RLEError("counts", "must be a list of integers", where) from None
        if isinstance(counts, (list, tuple)) and not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts
        ):
            raise RLEError("counts", "must be a list of integers", where)
    elif counts is None:
        raise RLEError("counts", "is missing", where)
    else:
        raise RLEError("counts", f"must be a string or a list, got {type(counts).__name__}", where)
    if len(runs) and runs.min() < 0:
        raise RLEError("counts", "holds a negative run length", where)
    total = int(runs.sum())
    if total != h * w:
        raise RLEError("counts", f"cover {total} pixels, but size {[h, w]} has {h * w}", where)
    return (h, w), runs


def rle_validate(rle: dict[str, Any], where: str = "") -> None:
    """Raise :class:`RLEError` unless ``rle`` decodes to a mask of its stated size."""
    rle_counts(rle, where)


def rle_decode(rle: dict[str, Any], where: str = "") -> np.ndarray:
    """COCO RLE -> uint8 ``[H, W]`` of 0/1, validated (see module docstring); ``where`` prefixes errors."""
    (h, w), runs = rle_counts(rle, where)
    values = (np.arange(len(runs)) % 2).astype(np.uint8)
    flat = np.repeat(values, runs)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def rle_area(rle: dict[str, Any], where: str = "") -> int:
    """Foreground pixels of a COCO RLE, without decoding the mask."""
    _, runs = rle_counts(rle, where)
    return int(runs[1::2].sum())


def _compress(runs: np.ndarray) -> str:
    """Run lengths -> COCO's compressed counts string (the inverse of :func:`_parse_compressed`)."""
    if len(runs) == 0:
        return ""
    x = runs.astype(np.int64).copy()
    x[3::2] = np.diff(runs[1::2])
    if len(runs) > 4:
        x[4::2] = np.diff(runs[2::2])
    chars = np.full((len(x), 13), -1, np.int64)
    active = np.ones(len(x), bool)
    k = 0
    while active.any():
        c = x & 0x1F
        x = x >> 5  # arithmetic shift, as in the C code
        more = np.where((c & 0x10) != 0, x != -1, x != 0)
        chars[active, k] = (c | np.where(more, 0x20, 0))[active] + 48
        active &= more
        k += 1
    flat = chars[:, :k].reshape(-1)
    return flat[flat >= 0].astype(np.uint8).tobytes().decode("ascii")


def rle_from_counts(height: int, width: int, runs: Sequence[int]) -> dict[str, Any]:
    """Run lengths (column-major, starting with background) -> compressed COCO RLE."""
    r = np.asarray(runs, np.int64)
    return {"size": [int(height), int(width)], "counts": _compress(r)}


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """``[H, W]`` mask (nonzero = foreground) -> ``{"size": [h, w], "counts": str}`` (pycocotools-identical)."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    if h * w == 0:
        return {"size": [int(h), int(w)], "counts": "0"}  # one empty run, as pycocotools writes it
    fg = m != 0
    # changes along COCO's column-major order, found without transposing the frame: within a column (row r -> r+1)
    # and across a column wrap (bottom of column c -> top of column c + 1); flat index = c * h + r
    rs, cs = np.divmod(np.flatnonzero(fg[1:, :] != fg[:-1, :]), w)  # (1-D flatnonzero is ~10x a 2-D nonzero)
    wraps = np.flatnonzero(fg[0, 1:] != fg[-1, :-1])
    change = np.sort(np.concatenate([cs.astype(np.int64) * h + rs + 1, (wraps.astype(np.int64) + 1) * h]))
    bounds = np.concatenate([[0], change, [h * w]])
    runs = np.diff(bounds)
    if fg[0, 0]:
        runs = np.concatenate([[0], runs])
    return {"size": [int(h), int(w)], "counts": _compress(runs)}


def rle_normalise(rle: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Any valid COCO RLE (``str``/``bytes``/``list`` counts) -> validated compressed RLE with ``str`` counts."""
    (h, w), runs = rle_counts(rle, where)
    counts = rle["counts"]
    if isinstance(counts, (str, bytes, bytearray)):
        c = counts.decode("ascii") if isinstance(counts, (bytes, bytearray)) else counts
        return {"size": [h, w], "counts": c}
    return rle_from_counts(h, w, runs)
