"""The training manifest: the versioned contract between the app's label store and ``core_model``.

The app snapshots reviewed labels into a manifest; ``endofm finetune`` / ``endofm evaluate`` read it. The phantom
generator writes one next to its videos. It is JSON, validated on read, and split **by video** (never by frame).

Schema ``endoreview.training-manifest`` version 1::

    {
      "schema": "endoreview.training-manifest",
      "version": 1,
      "created": "2026-11-28T04:00:00+00:00",
      "source": {...},                        # free provenance: snapshot id, database, generator, ...
      "classes": {                            # label names per task
        "video": ["normal", "abnormal"],      # video-level class
        "segment": ["polyp"],                 # temporal segment class
        "mask": ["polyp"],                    # per-frame mask class
        "box": ["polyp"]                      # per-frame box class
      },
      "videos": [{
        "id": "v1",                           # stable id (store id or name); logs use it, never the path
        "path": "videos/v1.mp4",              # absolute, or relative to the manifest's folder
        "split": "train",                     # train | val | test | unassigned
        "num_frames": 64, "fps": 30.0, "width": 256, "height": 256,
        "site": "default",                    # optional: acquisition site / domain tag
        "video_label": "abnormal",            # optional, one of classes.video
        "segments": [{"start": 10, "end": 40, "label": "polyp"}],    # [start, end), 0-based
        "frames": [{                          # only frames that carry reviewed labels
          "frame": 12,                        # 0-based, < num_frames
          "masks": [{"label": "polyp", "track_id": 1, "rle": {"size": [h, w], "counts": "..."}}],
          "boxes": [{"label": "polyp", "track_id": 1, "bbox": [x0, y0, x1, y1]}],   # pixels, x1/y1 exclusive
          "negative": false                   # true: reviewed and known to contain no mask/box object
        }]
      }]
    }

A frame listed with no masks/boxes and ``negative: true`` is a hard negative (for example a rejected prediction). A
frame that is not listed is unlabelled: a trainer must not treat it as background unless the video says
``"dense": true`` (every frame reviewed; absent frames are then negatives).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core_model.atomic import atomic_write_text

SCHEMA = "endoreview.training-manifest"
SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test", "unassigned")
TASKS = ("video", "segment", "mask", "box")


class ManifestError(ValueError):
    """A manifest that cannot be used; names the file, the field and the reason."""

    def __init__(self, path: str | os.PathLike | None, where: str, reason: str):
        self.path = str(path) if path is not None else "<manifest>"
        self.where = where
        self.reason = reason
        super().__init__(f"{self.path}: {where}: {reason}")


@dataclass(frozen=True)
class MaskLabel:
    label: str
    rle: dict[str, Any]
    track_id: int | None = None


@dataclass(frozen=True)
class BoxLabel:
    label: str
    bbox: tuple[float, float, float, float]
    track_id: int | None = None


@dataclass(frozen=True)
class FrameLabels:
    frame: int
    masks: tuple[MaskLabel, ...] = ()
    boxes: tuple[BoxLabel, ...] = ()
    negative: bool = False


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    label: str


@dataclass(frozen=True)
class ManifestVideo:
    id: str
    path: str
    split: str
    num_frames: int
    fps: float
    width: int
    height: int
    video_label: str | None = None
    segments: tuple[Segment, ...] = ()
    frames: tuple[FrameLabels, ...] = ()
    site: str | None = None
    dense: bool = False

    def frame_map(self) -> dict[int, FrameLabels]:
        return {f.frame: f for f in self.frames}

    def frame_has_object(self, frame: int) -> bool | None:
        """True/False where known (labelled frame or dense video), None where unlabelled."""
        fl = self.frame_map().get(frame)
        if fl is not None:
            return bool(fl.masks or fl.boxes)
        return False if self.dense else None


@dataclass(frozen=True)
class TrainingManifest:
    videos: tuple[ManifestVideo, ...]
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    created: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    root: str = ""  # folder that relative video paths resolve against (the manifest's folder when loaded)

    def split(self, name: str) -> tuple[ManifestVideo, ...]:
        return tuple(v for v in self.videos if v.split == name)

    def resolve_path(self, video: ManifestVideo) -> Path:
        p = Path(video.path)
        return p if p.is_absolute() or not self.root else Path(self.root) / p

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Counts per task and class (videos for 'video', segments, mask and box instances)."""
        counts: dict[str, dict[str, int]] = {t: {} for t in TASKS}

        def bump(task: str, name: str) -> None:
            counts[task][name] = counts[task].get(name, 0) + 1

        for v in self.videos:
            if v.video_label is not None:
                bump("video", v.video_label)
            for s in v.segments:
                bump("segment", s.label)
            for f in v.frames:
                for m in f.masks:
                    bump("mask", m.label)
                for b in f.boxes:
                    bump("box", b.label)
        return counts


# ----------------------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------------------
def assign_splits(
    videos: Sequence[ManifestVideo], val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> tuple[ManifestVideo, ...]:
    """Assign train/val/test per video, deterministically from (seed, video id). Never splits a video.

    Videos are ordered by a seeded hash of their id; the first ``round(n*test)`` go to test, the next
    ``round(n*val)`` to val (at least one each when the fraction is > 0 and there are ≥ 2 videos), the rest to train.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"split fractions must be in [0, 1) and sum below 1, got val={val_fraction} test={test_fraction}"
        )
    n = len(videos)
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{videos[i].id}".encode()).hexdigest())

    def count(frac: float) -> int:
        k = round(n * frac)
        return max(k, 1) if frac > 0 and n >= 2 else k

    n_test = count(test_fraction)
    n_val = min(count(val_fraction), max(n - n_test - 1, 0))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return tuple(replace(v, split=split_of[i]) for i, v in enumerate(videos))


# ----------------------------------------------------------------------------------------------------------------
# Serialisation
# ----------------------------------------------------------------------------------------------------------------
def _video_to_json(v: ManifestVideo) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": v.id,
        "path": v.path,
        "split": v.split,
        "num_frames": v.num_frames,
        "fps": v.fps,
        "width": v.width,
        "height": v.height,
        "video_label": v.video_label,
        "segments": [{"start": s.start, "end": s.end, "label": s.label} for s in v.segments],
        "frames": [
            {
                "frame": f.frame,
                "masks": [{"label": m.label, "track_id": m.track_id, "rle": m.rle} for m in f.masks],
                "boxes": [{"label": b.label, "track_id": b.track_id, "bbox": list(b.bbox)} for b in f.boxes],
                "negative": f.negative,
            }
            for f in v.frames
        ],
    }
    if v.site is not None:
        d["site"] = v.site
    if v.dense:
        d["dense"] = True
    return d


def manifest_to_json(m: TrainingManifest) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": m.created or datetime.now(UTC).isoformat(timespec="seconds"),
        "source": m.source,
        "classes": {k: list(v) for k, v in m.classes.items()},
        "videos": [_video_to_json(v) for v in m.videos],
    }


def save_manifest(m: TrainingManifest, path: str | os.PathLike) -> Path:
    """Validate and write atomically (temp file + rename), so a crash never leaves half a manifest."""
    path = Path(path)
    data = manifest_to_json(m)
    parse_manifest(data, path=path)  # never write something we would refuse to read
    return atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def load_manifest(path: str | os.PathLike) -> TrainingManifest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(path, "file", "does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(path, "file", f"cannot be read ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(path, f"line {e.lineno} column {e.colno}", f"not valid JSON ({e.msg})") from None
    m = parse_manifest(data, path=path)
    return replace(m, root=str(path.resolve().parent))


def _req(d: dict, key: str, typ: type | tuple[type, ...], where: str, path) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ManifestError(path, where, f"missing field '{key}'")
    val = d[key]
    if typ is float and isinstance(val, int) and not isinstance(val, bool):
        return float(val)
    if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise ManifestError(path, f"{where}.{key}", f"expected {name}, got {type(val).__name__}")
    return val


def _check_label(label: Any, task: str, classes: dict[str, tuple[str, ...]], where: str, path) -> str:
    if not isinstance(label, str) or not label:
        raise ManifestError(path, where, "label must be a non-empty string")
    allowed = classes.get(task)
    if allowed and label not in allowed:
        raise ManifestError(path, where, f"label '{label}' is not one of the {task} classes {list(allowed)}")
    return label


def _track(d: dict, where: str, path) -> int | None:
    t = d.get("track_id")
    if t is None:
        return None
    if not isinstance(t, int) or isinstance(t, bool):
        raise ManifestError(path, f"{where}.track_id", "must be an integer or null")
    return t


def parse_manifest(data: Any, path: str | os.PathLike | None = None) -> TrainingManifest:
    """Validate a decoded manifest and build the dataclasses. Raises ``ManifestError`` naming the field."""
    if not isinstance(data, dict):
        raise ManifestError(path, "top level", "must be a JSON object")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ManifestError(path, "schema", f"expected '{SCHEMA}', got {schema!r} (not a training manifest)")
    version = _req(data, "version", int, "top level", path)
    if version > SCHEMA_VERSION:
        raise ManifestError(
            path,
            "version",
            f"written by a newer EndoReview (schema v{version}; this one reads up to v{SCHEMA_VERSION})",
        )
    if version < 1:
        raise ManifestError(path, "version", f"invalid schema version {version}")
    raw_classes = data.get("classes", {}) or {}
    if not isinstance(raw_classes, dict):
        raise ManifestError(path, "classes", "must be an object of task -> list of names")
    classes: dict[str, tuple[str, ...]] = {}
    for task, names in raw_classes.items():
        if task not in TASKS:
            raise ManifestError(path, f"classes.{task}", f"unknown task (expected one of {list(TASKS)})")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ManifestError(path, f"classes.{task}", "must be a list of non-empty strings")
        if len(set(names)) != len(names):
            raise ManifestError(path, f"classes.{task}", "contains duplicate names")
        classes[task] = tuple(names)
    vids = _req(data, "videos", list, "top level", path)
    seen_ids: set[str] = set()
    videos = []
    for vi, v in enumerate(vids):
        w = f"videos[{vi}]"
        if not isinstance(v, dict):
            raise ManifestError(path, w, "must be an object")
        vid = _req(v, "id", str, w, path)
        w = f"videos[{vi}] (id {vid})"
        if vid in seen_ids:
            raise ManifestError(path, w, "duplicate video id")
        seen_ids.add(vid)
        vpath = _req(v, "path", str, w, path)
        split = v.get("split", "unassigned")
        if split not in SPLITS:
            raise ManifestError(path, f"{w}.split", f"'{split}' is not one of {list(SPLITS)}")
        nf = _req(v, "num_frames", int, w, path)
        fps = _req(v, "fps", float, w, path)
        width = _req(v, "width", int, w, path)
        height = _req(v, "height", int, w, path)
        if nf <= 0 or width <= 0 or height <= 0:
            raise ManifestError(path, w, "num_frames, width and height must be positive")
        if not math.isfinite(fps) or fps <= 0:
            raise ManifestError(path, f"{w}.fps", "must be a positive number")
        vlabel = v.get("video_label")
        if vlabel is not None:
            _check_label(vlabel, "video", classes, f"{w}.video_label", path)
        segments = []
        for si, s in enumerate(v.get("segments", []) or []):
            sw = f"{w}.segments[{si}]"
            start = _req(s, "start", int, sw, path)
            end = _req(s, "end", int, sw, path)
            if not 0 <= start < end <= nf:
                raise ManifestError(path, sw, f"[{start}, {end}) is not a non-empty range within 0..{nf}")
            segments.append(Segment(start, end, _check_label(s.get("label"), "segment", classes, sw, path)))
        frames = []
        seen_frames: set[int] = set()
        for fi, f in enumerate(v.get("frames", []) or []):
            fw = f"{w}.frames[{fi}]"
            fr = _req(f, "frame", int, fw, path)
            if not 0 <= fr < nf:
                raise ManifestError(
                    path, f"{fw}.frame", f"frame {fr} does not exist (video has {nf} frames, 0-based)"
                )
            if fr in seen_frames:
                raise ManifestError(path, f"{fw}.frame", f"frame {fr} listed twice")
            seen_frames.add(fr)
            masks = []
            for mi, mk in enumerate(f.get("masks", []) or []):
                mw = f"{fw}.masks[{mi}]"
                rle = _req(mk, "rle", dict, mw, path)
                size = rle.get("size")
                if not (isinstance(size, list) and len(size) == 2 and "counts" in rle):
                    raise ManifestError(
                        path, f"{mw}.rle", "must be a COCO RLE with 'size' [h, w] and 'counts'"
                    )
                if list(size) != [height, width]:
                    raise ManifestError(
                        path, f"{mw}.rle", f"mask size {size} differs from the video's [{height}, {width}]"
                    )
                masks.append(
                    MaskLabel(
                        _check_label(mk.get("label"), "mask", classes, mw, path), rle, _track(mk, mw, path)
                    )
                )
            boxes = []
            for bi, bx in enumerate(f.get("boxes", []) or []):
                bw = f"{fw}.boxes[{bi}]"
                bb = _req(bx, "bbox", list, bw, path)
                if len(bb) != 4 or not all(isinstance(c, int | float) and math.isfinite(c) for c in bb):
                    raise ManifestError(path, f"{bw}.bbox", "must be [x0, y0, x1, y1] numbers")
                x0, y0, x1, y1 = (float(c) for c in bb)
                if not (x1 > x0 and y1 > y0):
                    raise ManifestError(path, f"{bw}.bbox", f"{bb} has no area (need x1 > x0 and y1 > y0)")
                if x0 < -0.5 or y0 < -0.5 or x1 > width + 0.5 or y1 > height + 0.5:
                    raise ManifestError(path, f"{bw}.bbox", f"{bb} lies outside the {width}x{height} frame")
                boxes.append(
                    BoxLabel(
                        _check_label(bx.get("label"), "box", classes, bw, path),
                        (x0, y0, x1, y1),
                        _track(bx, bw, path),
                    )
                )
            negative = bool(f.get("negative", False))
            if negative and (masks or boxes):
                raise ManifestError(path, fw, "a negative frame cannot carry masks or boxes")
            frames.append(FrameLabels(fr, tuple(masks), tuple(boxes), negative))
        frames.sort(key=lambda fl: fl.frame)
        site = v.get("site")
        videos.append(
            ManifestVideo(
                id=vid,
                path=vpath,
                split=split,
                num_frames=nf,
                fps=fps,
                width=width,
                height=height,
                video_label=vlabel,
                segments=tuple(segments),
                frames=tuple(frames),
                site=site if isinstance(site, str) else None,
                dense=bool(v.get("dense", False)),
            )
        )
    source = data.get("source", {})
    return TrainingManifest(
        videos=tuple(videos),
        classes=classes,
        created=str(data.get("created", "")),
        source=source if isinstance(source, dict) else {},
    )


def merge_manifests(manifests: Iterable[TrainingManifest]) -> TrainingManifest:
    """Concatenate manifests (ids must be unique across them); class lists are unioned in order."""
    videos: list[ManifestVideo] = []
    classes: dict[str, list[str]] = {}
    for m in manifests:
        for task, names in m.classes.items():
            lst = classes.setdefault(task, [])
            lst.extend(n for n in names if n not in lst)
        for v in m.videos:
            p = m.resolve_path(v)
            videos.append(replace(v, path=str(p)))
    merged = TrainingManifest(tuple(videos), {k: tuple(v) for k, v in classes.items()})
    parse_manifest(manifest_to_json(merged))
    return merged
