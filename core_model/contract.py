"""The model contract: what a model expects and what it emits, importable without torch.

One home each for:

* **Normalisation constants.** ``IMAGENET_MEAN``/``IMAGENET_STD`` (torchvision's ImageNet statistics, our default)
  and ``ENDOFM_MEAN``/``ENDOFM_STD`` (0.45/0.225, the official Endo-FM fine-tuning configs,
  ../shared/docs/endofm-reference.md §5.1).
* **The model metadata** (``model.json``, format 2, migrated from format 1 on read): :class:`ModelMeta` with the
  typed :class:`DataConfig` (how the model must be fed: normalisation, frames, sampling, size, resize/crop, clip
  plan; the official PolypDiag protocol is :data:`POLYPDIAG_OFFICIAL`), the heads and their classes, the
  :class:`OperatingPoint` per task (how frame scores become a whole-video call: :func:`video_decision`), lineage and
  provenance.
* **The COCO RLE codec** used for every mask in the tree (predictions, the store, the editor, interchange, training
  data). ``rle_encode(mask)`` gives ``{"size": [h, w], "counts": str}`` byte-identical to
  ``pycocotools.mask.encode`` on the Fortran-ordered mask; ``rle_decode(rle)`` accepts compressed (``str``/``bytes``)
  or uncompressed (``list``) counts and *validates*: the counts must be well-formed, non-negative and sum to
  ``h * w``, otherwise :class:`RLEError` names the field and the reason (pycocotools silently pads or truncates).
  Pure numpy (vectorised); no pycocotools needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_DATA",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "POLYPDIAG_OFFICIAL",
    "PROTOCOLS",
    "CheckpointError",
    "DataConfig",
    "ModelMeta",
    "OperatingPoint",
    "VideoDecision",
    "aggregate_score",
    "calibrate_operating_point",
    "data_from_legacy_preprocess",
    "migrate_model_json",
    "read_model_json",
    "video_decision",
    "ENDOFM_MEAN",
    "ENDOFM_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RLEError",
    "rle_area",
    "rle_counts",
    "rle_decode",
    "rle_decode_box",
    "rle_encode",
    "rle_from_counts",
    "rle_normalise",
    "rle_validate",
    "unknown_fields",
]


def unknown_fields(cls: Any, given: Any) -> list[str]:
    """The names in ``given`` that are not fields of the dataclass ``cls``, sorted: configs refuse them (a typo must
    not be silently ignored)."""
    return sorted(set(given) - {f.name for f in dataclasses.fields(cls)})


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
    b = np.frombuffer(s, np.uint8)
    if b.min() < 48 or b.max() > 111:
        raise RLEError("counts", "holds characters outside the COCO RLE alphabet ('0'..'o')", where)
    raw = b - np.uint8(48)
    last = raw < 0x20  # a number's last character (no continuation bit)
    if not last[-1]:
        raise RLEError("counts", "ends in the middle of a number (truncated string)", where)
    ends = np.flatnonzero(last)
    n_chars = ends.copy()
    n_chars[1:] -= ends[:-1]
    n_chars[0] += 1
    longest = int(n_chars.max())
    if longest > 12:
        raise RLEError("counts", "holds a number too long to be a run length", where)
    if longest == 1:
        vals = (raw & np.uint8(0x1F)).astype(np.int64)
    else:
        # a number is the sum of its characters' 5 bits, each shifted by its place in the number: the difference of
        # a running sum at the number's last character and at the previous number's (the sum may wrap around, the
        # difference is still exact); 32-bit while every number fits (6 characters), which halves the memory moved
        dt = np.int32 if longest <= 6 else np.int64
        place = np.ones(raw.size, np.uint8)
        place[0] = 0
        place[ends[:-1] + 1] = 1 - n_chars[:-1]  # back to 0 where a number starts (wrapping, as the sum does)
        np.cumsum(place, out=place)
        c = np.cumsum((raw & np.uint8(0x1F)).astype(dt) << (place * np.uint8(5)).astype(dt), dtype=dt)
        vals = c[ends].astype(np.int64)
        vals[1:] -= c[ends[:-1]]
        if dt is np.int32:
            vals &= 0xFFFFFFFF  # the 32-bit difference, which is the number (< 2**30)
    # the last character's 0x10 bit makes the number negative (two's complement over its 5k bits)
    neg = raw[ends] >= 0x10
    if neg.any():
        np.subtract(vals, np.left_shift(1, 5 * n_chars), out=vals, where=neg)
    # x[m] += x[m - 2] for m > 2: running sums over odd indices and over even indices from 2
    vals[1::2].cumsum(out=vals[1::2])
    if len(vals) > 2:
        vals[2::2].cumsum(out=vals[2::2])
    return vals


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


def rle_extent(h: int, runs: np.ndarray) -> tuple[tuple[float, float, float, float] | None, int]:
    """``(box, area)`` of a mask of height ``h`` from its COCO run lengths (never decoded): the box
    ``(x0, y0, x1, y1)`` (x1, y1 exclusive; ``None`` when empty) and the foreground pixel count."""
    runs = np.asarray(runs, np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    s, e = starts[1::2], ends[1::2] - 1  # foreground runs, inclusive ends (column-major order)
    keep = e >= s
    s, e = s[keep], e[keep]
    if s.size == 0 or h == 0:
        return None, 0
    area = int((e - s + 1).sum())
    cs, ce = s // h, e // h
    x0, x1 = float(cs.min()), float(ce.max() + 1)
    if (
        ce > cs
    ).any():  # a run over a column boundary covers the bottom row of one and the top row of the next
        y0, y1 = 0.0, float(h)
    else:
        y0, y1 = float((s % h).min()), float((e % h).max() + 1)
    return (x0, y0, x1, y1), area


def rle_decode(rle: dict[str, Any], where: str = "") -> np.ndarray:
    """COCO RLE -> uint8 ``[H, W]`` of 0/1, validated (see module docstring); ``where`` prefixes errors."""
    (h, w), runs = rle_counts(rle, where)
    values = (np.arange(len(runs)) % 2).astype(np.uint8)
    flat = np.repeat(values, runs)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def rle_decode_box(rle: dict[str, Any], where: str = "") -> tuple[np.ndarray, int, int]:
    """The mask's pixels in the columns it covers, without decoding the rest of the frame: ``(crop, x0, y0)`` with
    ``crop`` uint8 ``[H, x1 - x0]`` (all rows; ``y0`` is 0) equal to ``rle_decode(rle)[:, x0:x1]``; an empty mask
    gives a ``[H, 0]`` crop. A polyp covers a fraction of a 1080p frame; drawing its outline for every frame shown
    decoded and transposed the whole frame (~3 ms)."""
    (h, w), runs = rle_counts(rle, where)
    ends = np.cumsum(runs, dtype=np.int64)
    starts = ends - runs
    on = (np.arange(len(runs)) % 2 == 1) & (runs > 0)
    if not on.any():
        return np.zeros((h, 0), np.uint8), 0, 0
    c0, c1 = int(starts[on].min() // h), int((ends[on].max() - 1) // h + 1)
    lo, hi = c0 * h, c1 * h
    i0, i1 = int(np.searchsorted(ends, lo, side="right")), int(np.searchsorted(starts, hi, side="left"))
    lengths = np.minimum(ends[i0:i1], hi) - np.maximum(starts[i0:i1], lo)
    flat = np.repeat((np.arange(i0, i1) % 2).astype(np.uint8), lengths)
    return flat.reshape(c1 - c0, h).T, c0, 0  # a column-major view: .T of it is C-contiguous, no copy


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


# ----------------------------------------------------------------------------------------------------------------
# Model metadata (model.json)
# ----------------------------------------------------------------------------------------------------------------
MODEL_FORMAT = "endoreview-model"
MODEL_FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"

SAMPLINGS = (
    "stride",
    "span",
)  # stride: frames frame_stride apart; span: num_frames spread over span_s seconds
CLIP_PLANS = ("sliding", "first")  # sliding: clips every clip_stride frames; first: one clip from frame 0
RESIZES = (
    "squash",
    "short_side_corner",
)  # whole frame to img_size | short side to size, left/top square crop
OFFICIAL_SPAN_S = 32 * 8 / 30  # PolypDiag: SAMPLING_RATE * NUM_FRAMES / TARGET_FPS seconds (reference §4.2)


class CheckpointError(ValueError):
    """A checkpoint or model directory cannot be used; the message names the file and the reason."""


def _floats3(v: Any, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"data.{name} must be 3 numbers, got {v!r}") from None
    if len(out) != 3:
        raise ValueError(f"data.{name} must be 3 numbers (R, G, B), got {len(out)}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class DataConfig:
    """How a model must be fed (the one home for it; ``model.json`` ``"data"``).

    - ``mean`` / ``std``: per-channel normalisation of RGB in [0, 1];
    - ``num_frames``: frames per clip; ``sampling``: ``"stride"`` (``frame_stride`` frames apart) or ``"span"``
      (``num_frames`` spread by linspace over ``round(span_s * fps)`` frames: the official PolypDiag rule,
      32*8/30 s, so the clip covers the same time whatever the video's frame rate);
    - ``img_size``: ``(h, w)`` fed to the network; ``resize``: ``"squash"`` (the whole frame, aspect not kept) or
      ``"short_side_corner"`` (short side to ``img_size``, the left (landscape) / top (portrait) square: the
      official PolypDiag evaluation crop); ``antialias``: bilinear resize with antialiasing (ours) or without
      (the official code's ``F.interpolate``);
    - ``clips``: ``"sliding"`` (a clip every ``clip_stride`` frames over the whole video; ``None``: half a clip's
      span) or ``"first"`` (one clip from frame 0, the official PolypDiag per-video protocol);
    - ``protocol``: a name for the whole recipe (``"default"``, ``"polypdiag-official"``, ...), shown to users.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_frames: int = 8
    img_size: tuple[int, int] = (224, 224)
    sampling: str = "stride"
    frame_stride: int = 1
    span_s: float = OFFICIAL_SPAN_S
    clips: str = "sliding"
    clip_stride: int | None = None
    resize: str = "squash"
    antialias: bool = True
    protocol: str = "default"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _floats3(self.mean, "mean"))
        object.__setattr__(self, "std", _floats3(self.std, "std"))
        if any(s <= 0 for s in self.std):
            raise ValueError(f"data.std must be positive, got {self.std}")
        size = self.img_size
        size = (
            (int(size), int(size))
            if isinstance(size, (int, float, np.integer))
            else tuple(int(v) for v in size)
        )
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"data.img_size must be a positive size or [h, w], got {self.img_size!r}")
        object.__setattr__(self, "img_size", size)
        for name in ("num_frames", "frame_stride"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)!r}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.clip_stride is not None:
            if int(self.clip_stride) < 1:
                raise ValueError(f"data.clip_stride must be >= 1 or null, got {self.clip_stride!r}")
            object.__setattr__(self, "clip_stride", int(self.clip_stride))
        for name, allowed in (("sampling", SAMPLINGS), ("clips", CLIP_PLANS), ("resize", RESIZES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"data.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if float(self.span_s) <= 0:
            raise ValueError(f"data.span_s must be positive, got {self.span_s!r}")
        object.__setattr__(self, "span_s", float(self.span_s))

    # -- derived -----------------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The square side (``img_size[0]``) for code that only handles square inputs."""
        return self.img_size[0]

    def span_frames(self, fps: float | None) -> int:
        """Frames one clip covers in a video at ``fps`` (``span`` sampling needs the frame rate; 30 if unknown)."""
        if self.sampling == "span":
            return int(self.clip_offsets(fps)[-1]) + 1
        return self.frame_stride * (self.num_frames - 1) + 1

    def clip_offsets(self, fps: float | None) -> np.ndarray:
        """Frame offsets of one clip from its first frame. ``span``: the official rule (reference §3.2, §4.2):
        ``linspace(0, span_s * fps - 1, num_frames)`` truncated to integers (256 frames at 30 fps:
        0, 36, 72, 109, 145, 182, 218, 255)."""
        if self.sampling == "span":
            f = float(fps) if fps and fps > 0 else 30.0
            end = max(self.span_s * f - 1.0, 0.0)
            return np.linspace(0.0, end, self.num_frames).astype(np.int64)
        return self.frame_stride * np.arange(self.num_frames, dtype=np.int64)

    def effective_clip_stride(self, fps: float | None = None) -> int:
        if self.clip_stride is not None:
            return self.clip_stride
        return max(1, (self.num_frames * (self.frame_stride if self.sampling == "stride" else 1)) // 2)

    def replace(self, **changes: Any) -> DataConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"], d["img_size"] = list(self.mean), list(self.std), list(self.img_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "data") -> DataConfig:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where} must be an object, got {type(d).__name__}")
        unknown = unknown_fields(cls, d)
        if unknown:
            raise ValueError(f"{where} has unknown fields {unknown}")
        return cls(**dict(d))

    def differences(self, other: DataConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` where the two differ (JSON-ready values)."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


DEFAULT_DATA = DataConfig()
POLYPDIAG_OFFICIAL = DataConfig(
    mean=ENDOFM_MEAN,
    std=ENDOFM_STD,
    num_frames=8,
    img_size=(224, 224),
    sampling="span",
    span_s=OFFICIAL_SPAN_S,
    clips="first",
    resize="short_side_corner",
    antialias=False,
    protocol="polypdiag-official",
)
PROTOCOLS: dict[str, DataConfig] = {"polypdiag-official": POLYPDIAG_OFFICIAL}


def data_from_legacy_preprocess(pre: Mapping[str, Any]) -> DataConfig:
    """A format-1 ``preprocess`` dict (mean, std, num_frames, img_size, frame_stride, clip_stride) -> DataConfig:
    stride sampling, sliding clips and the whole frame squashed, which is what format-1 predictors did."""
    return DataConfig(
        mean=pre.get("mean", IMAGENET_MEAN),
        std=pre.get("std", IMAGENET_STD),
        num_frames=int(pre.get("num_frames", 8)),
        img_size=pre.get("img_size", 224),
        frame_stride=int(pre.get("frame_stride", 1) or 1),
        clip_stride=int(pre["clip_stride"]) if pre.get("clip_stride") else None,
    )


# ---- operating points and video-level decisions ----------------------------------------------------------------
AGGREGATIONS = ("sustained", "top_k", "mean")
EVIDENCE = ("classification", "segmentation", "detection")


@dataclass(frozen=True)
class OperatingPoint:
    """How per-frame scores of one task become a whole-video call.

    ``positive``: the finding (a class of the task's head) whose presence makes the video ``abnormal_label``.
    ``rule``: ``"sustained"`` (the video's score is the highest mean of the positive class's frame probability over
    ``window_s`` seconds: one short polyp is enough), ``"top_k"`` (mean of the ``k`` highest frame probabilities) or
    ``"mean"`` (mean over the whole video: the legacy call, blind to a short finding). ``evidence``: which
    per-frame score is aggregated: the classification head's probability of ``positive``, or the highest score of a
    ``finding`` mask (``segmentation``) or box (``detection``) on the frame (0 where there is none). The video is
    called positive when the score >= ``threshold``. ``sensitivity`` / ``specificity`` / ``n_positive`` / ``n_negative``:
    measured at that threshold on ``split`` when the model was calibrated (``calibrated=False``: a default, not
    measured).
    """

    task: str = "classification"
    positive: str = "abnormal"
    evidence: str = "classification"
    finding: str = "polyp"
    rule: str = "sustained"
    window_s: float = 1.0
    k: int = 8
    threshold: float = 0.5
    sensitivity: float | None = None
    specificity: float | None = None
    n_positive: int | None = None
    n_negative: int | None = None
    split: str = "val"
    calibrated: bool = False

    def __post_init__(self) -> None:
        if self.evidence not in EVIDENCE:
            raise ValueError(
                f"operating point evidence must be one of {list(EVIDENCE)}, got {self.evidence!r}"
            )
        if self.rule not in AGGREGATIONS:
            raise ValueError(f"operating point rule must be one of {list(AGGREGATIONS)}, got {self.rule!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"operating point threshold must be in [0, 1], got {self.threshold!r}")
        if float(self.window_s) <= 0 or int(self.k) < 1:
            raise ValueError("operating point window_s must be > 0 and k >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "operating point") -> OperatingPoint:
        unknown = unknown_fields(cls, d)
        if unknown:
            raise ValueError(f"{where} has unknown fields {unknown}")
        return cls(**dict(d))


@dataclass(frozen=True)
class VideoDecision:
    """A whole-video call: ``positive`` (bool), ``score`` (what was compared with ``threshold``), and where the
    evidence is: ``start``/``end`` frames (``[start, end)``, None when the rule has no location) and ``text``,
    the banner line (``"abnormal: polyp suggested at 01:12–01:19, 0.90"``)."""

    positive: bool
    label: str
    score: float
    threshold: float
    rule: str
    start: int | None
    end: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _clock(frame: int, fps: float) -> str:
    s = int(frame / fps) if fps > 0 else int(frame)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def aggregate_score(
    frame_scores: np.ndarray, fps: float, op: OperatingPoint
) -> tuple[float, int | None, int | None]:
    """The video's score under ``op``'s rule and the frames ``[start, end)`` it comes from (None for ``mean``)."""
    p = np.asarray(frame_scores, np.float64).reshape(-1)
    if p.size == 0:
        return 0.0, None, None
    if op.rule == "mean":
        return float(p.mean()), None, None
    if op.rule == "top_k":
        k = min(int(op.k), p.size)
        idx = np.argpartition(-p, k - 1)[:k]
        return float(p[idx].mean()), int(idx.min()), int(idx.max()) + 1
    w = min(p.size, max(1, int(round(float(op.window_s) * (fps if fps and fps > 0 else 30.0)))))
    c = np.concatenate([[0.0], np.cumsum(p)])
    means = (c[w:] - c[:-w]) / w
    s = int(np.argmax(means))
    return float(means[s]), s, s + w


def video_decision(
    frame_scores: np.ndarray,
    fps: float,
    op: OperatingPoint,
    negative_label: str = "normal",
    abnormal_label: str = "abnormal",
    finding: str | None = None,
) -> VideoDecision:
    """Apply ``op`` to the positive class's per-frame probabilities of one video (see :class:`OperatingPoint`).
    The located evidence is the best window, widened to the neighbouring frames that are themselves >= threshold."""
    p = np.asarray(frame_scores, np.float64).reshape(-1)
    finding = finding or op.finding
    score, start, end = aggregate_score(p, fps, op)
    positive = score >= op.threshold
    label = abnormal_label if positive else negative_label
    if positive and start is not None and end is not None:
        while start > 0 and p[start - 1] >= op.threshold:
            start -= 1
        while end < p.size and p[end] >= op.threshold:
            end += 1
        text = f"{label}: {finding} suggested at {_clock(start, fps)}–{_clock(max(end - 1, start), fps)}, {score:.2f}"
    elif positive:
        text = f"{label}: {finding} score {score:.2f} (threshold {op.threshold:.2f})"
    else:
        text = f"{label}: no {finding} above {op.threshold:.2f} (highest {score:.2f})"
        start = end = None
    return VideoDecision(bool(positive), label, round(score, 4), op.threshold, op.rule, start, end, text)


def calibrate_operating_point(
    scores: Sequence[float],
    truth: Sequence[bool],
    base: OperatingPoint,
    split: str = "val",
    min_sensitivity: float = 0.9,
) -> OperatingPoint:
    """The screening threshold from validation videos' aggregated ``scores`` (``truth``: the video is positive):
    the most specific threshold that keeps sensitivity >= ``min_sensitivity`` (a screening tool should not miss a
    finding); if none does, the one maximising Youden's J. Candidates are the midpoints between observed scores;
    among equally specific ones the lowest wins (margin towards sensitivity). With only one class present the threshold stays ``base.threshold``; the rates measured on what
    there is are recorded either way.
    """
    s = np.asarray(scores, np.float64)
    t = np.asarray(truth, bool)
    n_pos, n_neg = int(t.sum()), int((~t).sum())

    def rates(thr: float) -> tuple[float | None, float | None]:
        sens = float((s[t] >= thr).mean()) if n_pos else None
        spec = float((s[~t] < thr).mean()) if n_neg else None
        return sens, spec

    thr = float(base.threshold)
    if n_pos and n_neg:
        u = np.unique(s)
        cands = np.concatenate([[max(0.0, u[0] - 1e-3)], (u[1:] + u[:-1]) / 2])  # midpoints between scores
        table = [(float(c), *rates(float(c))) for c in cands]
        ok = [(sp, -c) for c, se, sp in table if se is not None and se >= min_sensitivity - 1e-12]
        if ok:
            thr = -max(ok)[1]  # best specificity, then the lower (more sensitive) threshold
        else:
            thr = -max(((se or 0.0) + (sp or 0.0), -c) for c, se, sp in table)[1]
    se, sp = rates(thr)
    return dataclasses.replace(
        base,
        threshold=round(thr, 6),
        sensitivity=se,
        specificity=sp,
        n_positive=n_pos,
        n_negative=n_neg,
        split=split,
        calibrated=True,
    )


# ---- the metadata record -----------------------------------------------------------------------------------------
@dataclass
class ModelMeta:
    """``model.json``: what a model is, how it must be fed and how its outputs are called (format 2).

    - ``arch``: ``{"name": "endofm_base", "config": EndoFMConfig as dict}``;
    - ``data``: :class:`DataConfig`;
    - ``heads``: ``{task: {"classes": [...], ...}}`` (each head's own config, owned by ``core_model.heads``);
    - ``operating_points``: ``{task: OperatingPoint}`` (empty: the legacy argmax-of-mean call at 0.5);
    - ``lineage``: how this model's data config and heads relate to its parent (``{"parent", "inherited":
      [fields], "overrides": {field: {"parent", "child", "reason"}}, "heads": ...}``), written by fine-tuning;
    - ``ood``: the reference statistics of the out-of-domain check (``core_model.inference.ood``);
    - ``provenance``: where the weights came from (source file and hash, tool, date, training run).

    Format 1 files (``preprocess`` instead of ``data``) are migrated on read (:func:`migrate_model_json`).
    """

    arch: dict[str, Any]
    data: DataConfig = field(default_factory=DataConfig)
    heads: dict[str, Any] = field(default_factory=dict)
    operating_points: dict[str, OperatingPoint] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = MODEL_FORMAT
    format_version: int = MODEL_FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.arch, dict) or not isinstance(self.arch.get("config"), dict):
            raise ValueError("ModelMeta.arch must be {'name': ..., 'config': {...}}")
        if isinstance(self.data, Mapping):
            self.data = DataConfig.from_dict(self.data)

    # -- views ---------------------------------------------------------------------------------------------------
    @property
    def config(self):
        from core_model.models.config import EndoFMConfig

        return EndoFMConfig.from_dict(self.arch["config"])

    @property
    def arch_name(self) -> str:
        return str(self.arch.get("name", "custom"))

    @property
    def preprocess(self) -> dict[str, Any]:
        """Format-1 view of :attr:`data` (mean, std, num_frames, img_size, frame_stride, clip_stride)."""
        d = self.data
        return {
            "mean": list(d.mean),
            "std": list(d.std),
            "num_frames": d.num_frames,
            "img_size": d.img_size[0] if d.img_size[0] == d.img_size[1] else list(d.img_size),
            "frame_stride": d.frame_stride,
            "clip_stride": d.effective_clip_stride(),
        }

    def classes(self, task: str) -> list[str]:
        return [str(c) for c in (self.heads.get(task) or {}).get("classes", [])]

    def operating_point(self, task: str = "classification") -> OperatingPoint:
        """The stored point, or the default for the task: a sustained 1 s segment at 0.5, not calibrated."""
        if task in self.operating_points:
            return self.operating_points[task]
        cls = self.classes(task)
        positive = next((c for c in cls if c not in ("normal", "background")), cls[-1] if cls else "abnormal")
        return OperatingPoint(task=task, positive=positive)

    @classmethod
    def for_config(
        cls,
        cfg: Any,
        name: str = "custom",
        preprocess: DataConfig | Mapping[str, Any] | None = None,
        heads: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> ModelMeta:
        """Metadata for a backbone config (an ``EndoFMConfig``). ``preprocess``: a :class:`DataConfig`, or a dict of
        its fields / of format-1 ``preprocess`` keys over the official pre-training defaults (ImageNet mean/std,
        frame_stride 32, the config's frames and size)."""
        if isinstance(preprocess, DataConfig):
            dc = preprocess
        else:
            base = {"num_frames": cfg.num_frames, "img_size": cfg.img_size, "frame_stride": 32}
            dc = DataConfig(**{**base, **{k: v for k, v in dict(preprocess or {}).items() if v is not None}})
        return cls(
            arch={"name": name, "config": cfg.to_dict()},
            data=dc,
            heads=dict(heads or {}),
            provenance=dict(provenance or {}),
        )

    # -- (de)serialisation -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": MODEL_FORMAT_VERSION,
            "arch": self.arch,
            "data": self.data.to_dict(),
            "heads": self.heads,
            "operating_points": {k: v.to_dict() for k, v in self.operating_points.items()},
            "lineage": self.lineage,
            "ood": self.ood,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "model.json") -> ModelMeta:
        d = migrate_model_json(d, where)
        try:
            ops = {
                str(k): OperatingPoint.from_dict(v, f"operating_points.{k}")
                for k, v in (d.get("operating_points") or {}).items()
            }
            return cls(
                arch=dict(d["arch"]),
                data=DataConfig.from_dict(d["data"], "data"),
                heads=dict(d.get("heads") or {}),
                operating_points=ops,
                lineage=dict(d.get("lineage") or {}),
                ood=dict(d.get("ood") or {}),
                provenance=dict(d.get("provenance") or {}),
                format=d["format"],
                format_version=MODEL_FORMAT_VERSION,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid model metadata: {exc}") from exc


def migrate_model_json(d: Mapping[str, Any], where: str = "model.json") -> dict[str, Any]:
    """Any readable ``model.json`` dict -> the current format's dict (a new dict; ``d`` is not changed).

    Format 1 -> 2: ``preprocess`` becomes ``data`` (:func:`data_from_legacy_preprocess`), empty
    ``operating_points`` / ``lineage`` / ``ood``. Newer formats than this code reads are refused with a reason.
    """
    if not isinstance(d, Mapping):
        raise CheckpointError(f"{where}: model metadata must be a JSON object")
    if d.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{where}: not an EndoReview model (format {d.get('format')!r}, expected {MODEL_FORMAT!r})"
        )
    version = d.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{where}: bad format_version {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {version} was written by a newer EndoReview (this one reads up to "
            f"{MODEL_FORMAT_VERSION}); update the application"
        )
    out = dict(d)
    if version == 1:
        pre = out.pop("preprocess", None)
        if not isinstance(pre, Mapping):
            raise CheckpointError(f"{where}: format 1 model metadata lacks 'preprocess'")
        missing = [k for k in ("mean", "std", "num_frames", "img_size", "frame_stride") if k not in pre]
        if missing:
            raise CheckpointError(f"{where}: invalid model metadata: preprocess lacks {missing}")
        try:
            out["data"] = data_from_legacy_preprocess(pre).to_dict()
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid model metadata: {exc}") from exc
        out.setdefault("operating_points", {})
        out.setdefault("lineage", {})
        out.setdefault("ood", {})
        out["format_version"] = 2
        out.setdefault("migrated_from", 1)
    if "data" not in out:
        raise CheckpointError(f"{where}: invalid model metadata: 'data' missing")
    return out


def model_json_object(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(the file, its JSON object) of ``model.json`` or a model directory, as stored (not migrated): the one reader
    of the file. :class:`CheckpointError` names the directory or file that is missing, unreadable or not an object."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such model directory")
    if p.is_dir():
        p = p / META_FILE
    if not p.is_file():
        raise CheckpointError(f"{p.parent}: not a model directory ({META_FILE} missing)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p}: unreadable model metadata ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{p}: model metadata must be a JSON object")
    return p, raw


def read_model_json(path: str | os.PathLike) -> ModelMeta:
    """``model.json`` (or a model directory) -> :class:`ModelMeta`, migrated; torch-free (the app's reader)."""
    p, raw = model_json_object(path)
    return ModelMeta.from_dict(raw, str(p))
