"""A prediction run's output stored compactly: one ``frame_outputs`` row per frame, and open suggestions read from it.

Why: a 1080p procedure with the demo model lists one mask and 20 boxes a frame; one ``labels`` row each cost
1.68 GB of SQLite per hour of video and made the player load tens of thousands of rows. Now a frame's output is one
row: its class probabilities (JSON), its masks (``masks_z``: zlib-compressed JSON ``[class, score, h, w, counts,
track_id, area, [x0, y0, x1, y1] | null]``, the one COCO RLE string each with its pixel count and box, so that exports
need not parse it; rows written before have the first six only) and its boxes as one zlib-compressed little-endian float64 array ``[n, 7]``
(x0, y0, x1, y1, score, class index into ``box_classes``, track id; NaN for "none"; float64 so that every value reads
back exactly as the model gave it). Compression: the demo model's 1080p mask RLE (~8.4 KB of text a frame on the
benchmark's texture) packs to ~3.5 KB, its 20 boxes from 1,120 to ~600 bytes.
Every box the model gave is kept; the confidence slider hides low ones.

An item of a frame's output that no reviewer has acted on is an **open suggestion**: reads return it as a
:class:`~endoreview.store.records.Label` in state ``suggested`` whose id is *negative*, ``-ref`` with
``ref = run_id << 32 | frame << 9 | slot`` (``slot``: a mask's index, or 256 + a box's index, in the model's
order; stable when more output for the frame is appended). Accepting,
rejecting or editing one creates a real ``labels`` row carrying ``pred_ref = ref`` (the store does it in the same
transaction, see ``AnnotationsMixin._materialise``), and from then on that row stands in its place; undoing the
action deletes the row and the suggestion is open again.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core_model.contract import RLEError, rle_counts, rle_extent, rle_normalise
from endoreview.store import records as r
from endoreview.store.errors import InvalidInputError

BOX_COLUMNS = 7
MAX_SLOTS = 512
MAX_ITEMS = 256  # masks, and boxes, of one frame
BOX_SLOT = 256  # a box's slot is BOX_SLOT + its index
MAX_FRAME = (1 << 23) - 1
_SLOT_BITS = 9
_FRAME_BITS = 23


def make_ref(run_id: int, frame: int, slot: int) -> int:
    return (int(run_id) << 32) | (int(frame) << _SLOT_BITS) | int(slot)


def split_ref(ref: int) -> tuple[int, int, int]:
    """``(run_id, frame, slot)`` of a suggestion reference (the positive of its label id)."""
    ref = int(ref)
    return ref >> 32, (ref >> _SLOT_BITS) & ((1 << _FRAME_BITS) - 1), ref & (MAX_SLOTS - 1)


def is_virtual(label_id: int) -> bool:
    """Whether a label id names an open suggestion (model output no reviewer has acted on yet)."""
    return int(label_id) < 0


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _finite(v: Any, what: str) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise InvalidInputError(f"{what} must be a finite number, got {v!r}")
    return f


def pack_frame(
    frame: int,
    probs: Mapping[str, float],
    masks: Sequence[Mapping[str, Any]],
    boxes: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The ``frame_outputs`` column values of one frame (validated: every RLE decoded, boxes ordered)."""
    if not 0 <= int(frame) <= MAX_FRAME:
        raise InvalidInputError(f"frame {frame} is out of range")
    if len(masks) > MAX_ITEMS or len(boxes) > MAX_ITEMS:
        raise InvalidInputError(
            f"frame {frame} lists {len(masks)} masks and {len(boxes)} boxes; at most {MAX_ITEMS} of each are stored"
        )
    packed_masks = []
    best: float | None = None
    for m in masks:
        try:
            (h, w), runs = rle_counts(m["rle"])
            counts = m["rle"]["counts"]
            if not isinstance(counts, str):
                counts = rle_normalise(m["rle"])["counts"]
        except (RLEError, KeyError, TypeError) as e:
            raise InvalidInputError(
                f"frame {frame}: a mask's rle is not COCO RLE {{'size': [h, w], 'counts': str}} ({e})"
            ) from None
        score = _num(m.get("score"))
        track = m.get("track_id")
        box, area = rle_extent(h, runs)  # kept with the mask: exports never parse its runs again for them
        packed_masks.append(
            [
                str(m["label"]),
                score,
                int(h),
                int(w),
                counts,
                track,
                area,
                None if box is None else [int(v) for v in box],
            ]
        )
        best = max(best or 0.0, 1.0 if score is None else score)
    classes: list[str] = []
    arr = np.full((len(boxes), BOX_COLUMNS), np.nan, np.float64)
    for i, b in enumerate(boxes):
        try:
            x0, y0, x1, y1 = (_finite(v, f"frame {frame}: a box's bbox") for v in b["bbox"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"frame {frame}: a box needs bbox [x0, y0, x1, y1] ({e})") from None
        if not (x1 > x0 and y1 > y0):
            raise InvalidInputError(f"frame {frame}: a box needs x1 > x0 and y1 > y0, got {list(b['bbox'])}")
        name = str(b["label"])
        if name not in classes:
            classes.append(name)
        score = _num(b.get("score"))
        track = b.get("track_id")
        arr[i] = (x0, y0, x1, y1, np.nan if score is None else score, classes.index(name), np.nan)
        if track is not None:
            if not (isinstance(track, int) and abs(track) < (1 << 24)):
                raise InvalidInputError(
                    f"frame {frame}: a box's track_id must be a small integer, got {track!r}"
                )
            arr[i, 6] = track
        best = max(best or 0.0, 1.0 if score is None else score)
    return {
        "frame": int(frame),
        "probs": {str(k): float(v) for k, v in probs.items()},
        "n_masks": len(packed_masks),
        "n_boxes": len(boxes),
        "best_score": best,
        "masks_z": zlib.compress(json.dumps(packed_masks).encode(), 6) if packed_masks else None,
        "box_classes": classes or None,
        "boxes": zlib.compress(arr.astype("<f8").tobytes(), 6) if len(boxes) else None,
    }


@dataclass(frozen=True)
class Item:
    """One mask or box of a frame's output."""

    slot: int
    kind: r.LabelKind
    class_name: str
    score: float | None
    rle: dict[str, Any] | None = None
    bbox: tuple[float, float, float, float] | None = None
    track_id: int | None = None


def mask_extent(entry: Sequence[Any]) -> tuple[tuple[float, float, float, float] | None, int] | None:
    """``(box, area)`` of a packed mask entry as recorded with it (:func:`core_model.contract.rle_extent`), or
    ``None`` for a row written before they were kept."""
    if len(entry) < 8:
        return None
    box = entry[7]
    return (None if box is None else tuple(float(v) for v in box)), int(entry[6])


def unpack_raw(
    masks_z: bytes | None, box_classes: Any, boxes: bytes | None
) -> tuple[list[list[Any]], np.ndarray | None, list[str]]:
    """One ``frame_outputs`` row's masks (packed entries, see the module docstring), boxes (float64 ``[n, 7]``)
    and box class names, as stored (what exports read a procedure with, without an object per box)."""
    masks = json.loads(zlib.decompress(masks_z)) if masks_z else []
    arr = np.frombuffer(zlib.decompress(boxes), "<f8").reshape(-1, BOX_COLUMNS) if boxes else None
    return masks, arr, list(_json(box_classes) or ())


def unpack_items(masks_z: bytes | None, box_classes: Any, boxes: bytes | None) -> list[Item]:
    """The items of one ``frame_outputs`` row (its ``masks_z``, ``box_classes`` (JSON text or a list) and ``boxes``
    columns)."""
    out: list[Item] = []
    masks, arr, names = unpack_raw(masks_z, box_classes, boxes)
    for i, (name, score, h, w, counts, track, *_extent) in enumerate(masks):
        out.append(
            Item(i, r.LabelKind.MASK, name, score, rle={"size": [h, w], "counts": counts}, track_id=track)
        )
    if arr is not None:
        for i, bbox, cls, score, track in box_values(arr):
            out.append(Item(BOX_SLOT + i, r.LabelKind.BOX, names[cls], score, bbox=bbox, track_id=track))
    return out


def box_values(
    arr: np.ndarray,
) -> Iterator[tuple[int, tuple[float, float, float, float], int, float | None, int | None]]:
    """Each stored box row as ``(index, (x0, y0, x1, y1), class index, score, track id)``, NaN read as ``None``."""
    for i, (x0, y0, x1, y1, score, cls, track) in enumerate(arr.tolist()):
        yield (
            i,
            (x0, y0, x1, y1),
            int(cls),
            None if score != score else score,
            None if track != track else int(track),
        )


#: columns of ``frame_outputs`` (and of its run) a suggestion is built from
ROW_SELECT = (
    "SELECT o.run_id, o.frame, o.video_id, o.masks_z, o.box_classes, o.boxes, p.model_version_id "
    "FROM frame_outputs o JOIN prediction_runs p ON p.id = o.run_id"
)


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str | bytes) else v


def suggestions_from_rows(
    rows: Iterable[tuple[Any, ...]],
    consumed: set[int] | frozenset[int],
    kinds: set[str] | None = None,
) -> list[r.Label]:
    """Open suggestions of ``ROW_SELECT`` rows, leaving out items a label row stands for (``consumed`` refs)."""
    out: list[r.Label] = []
    for run_id, frame, video_id, masks_z, box_classes, boxes, model_version_id in rows:
        if kinds is not None and "box" not in kinds:
            boxes = None
        items = unpack_items(masks_z, box_classes, boxes)
        for it in items:
            if kinds is not None and str(it.kind) not in kinds:
                continue
            ref = make_ref(run_id, frame, it.slot)
            if ref in consumed:
                continue
            out.append(
                r.Label(
                    id=-ref,
                    video_id=video_id,
                    kind=it.kind,
                    class_name=it.class_name,
                    state=r.ReviewState.SUGGESTED,
                    origin=r.LabelOrigin.PREDICTED,
                    frame=frame,
                    rle=it.rle,
                    bbox=it.bbox,
                    track_id=it.track_id,
                    score=it.score,
                    model_version_id=model_version_id,
                    run_id=run_id,
                )
            )
    return out


def item_label_values(label: r.Label, ref: int) -> dict[str, Any]:
    """The ``labels`` columns of a suggestion turned into its own row (state set by the caller)."""
    rle, bbox = label.rle, label.bbox
    return {
        "video_id": label.video_id,
        "kind": str(label.kind),
        "class_name": label.class_name,
        "state": str(r.ReviewState.SUGGESTED),
        "origin": str(r.LabelOrigin.PREDICTED),
        "frame": label.frame,
        "start_frame": None,
        "end_frame": None,
        "rle_counts": rle["counts"] if rle else None,
        "rle_h": rle["size"][0] if rle else None,
        "rle_w": rle["size"][1] if rle else None,
        "x0": bbox[0] if bbox else None,
        "y0": bbox[1] if bbox else None,
        "x1": bbox[2] if bbox else None,
        "y1": bbox[3] if bbox else None,
        "track_id": label.track_id,
        "score": label.score,
        "model_version_id": label.model_version_id,
        "run_id": label.run_id,
        "reason": None,
        "pred_ref": ref,
    }


@dataclass(frozen=True)
class RunSummary:
    """What the timeline and the library draw of a run, without a single mask: ``probs`` float32 ``[T, C]``
    (NaN: no output on that frame) and ``best`` float32 ``[T]`` (the best mask or box score of each frame, 0 where
    the model listed none, NaN where there is no output)."""

    run_id: int
    classes: tuple[str, ...]
    probs: np.ndarray
    best: np.ndarray

    def frame_probs(self, frame: int) -> dict[str, float]:
        row = self.probs[frame]
        return {c: float(v) for c, v in zip(self.classes, row.tolist()) if v == v}


def build_summary(run_id: int, frame_count: int, rows: Iterable[tuple[int, Any, float | None]]) -> RunSummary:
    """A :class:`RunSummary` from ``(frame, probs, best_score)`` rows."""
    classes: list[str] = []
    cols: list[np.ndarray] = []
    best = np.full(frame_count, np.nan, np.float32)
    for frame, probs, score in rows:
        if not 0 <= frame < frame_count:
            continue
        for name, p in (_json(probs) or {}).items():
            if name not in classes:
                classes.append(name)
                cols.append(np.full(frame_count, np.nan, np.float32))
            cols[classes.index(name)][frame] = p
        best[frame] = 0.0 if score is None else score
    probs_arr = np.stack(cols, axis=1) if cols else np.zeros((frame_count, 0), np.float32)
    return RunSummary(run_id, tuple(classes), probs_arr, best)


def summary_columns(summary: RunSummary) -> dict[str, Any]:
    return {
        "summary_classes": list(summary.classes),
        "summary_probs": np.ascontiguousarray(summary.probs, "<f4").tobytes(),
        "summary_best": np.ascontiguousarray(summary.best, "<f4").tobytes(),
    }


def summary_from_columns(
    run_id: int, frame_count: int, classes: Any, probs: bytes, best: bytes
) -> RunSummary | None:
    names = tuple(_json(classes) or ())
    p = np.frombuffer(probs, "<f4")
    b = np.frombuffer(best, "<f4")
    if b.size != frame_count or p.size != frame_count * len(names):
        return None  # the video's length changed since (a relinked file): rebuild from the frames
    return RunSummary(run_id, names, p.reshape(frame_count, len(names)).copy(), b.copy())
