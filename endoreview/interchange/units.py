"""Helpers of the importer: validating a unit, finding import units on disk, frame sequences, name matching."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from core_model.contract import RLEError, rle_counts
from endoreview.interchange.dicom import is_dicom
from endoreview.interchange.model import InterchangeError, VideoItem
from endoreview.interchange.raster import IMAGE_EXTS
from endoreview.interchange.util import is_junk
from endoreview.store.records import Video

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


INT64 = 2**63


def _check_numbers(item: VideoItem) -> None:
    """Track ids that fit the database's 64-bit integers and finite scores (else SQLite raised a bare
    ``OverflowError`` naming nothing, part-way through writing)."""
    for a in (*item.masks, *item.boxes):
        t = a.track_id
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not -INT64 <= t < INT64):
            raise InterchangeError.at(a.provenance, f"track id {t!r} is not a whole number within 64 bits")
    for a in (*item.masks, *item.boxes, *item.segments, *item.video_labels):
        sc = getattr(a, "score", None)
        if sc is not None and not (isinstance(sc, (int, float)) and math.isfinite(sc)):
            raise InterchangeError.at(a.provenance, f"score {sc!r} is not a finite number")
    for b in item.boxes:
        if not all(isinstance(c, (int, float)) and math.isfinite(c) for c in b.bbox):
            raise InterchangeError.at(b.provenance, f"box {list(b.bbox)} has a coordinate that is not finite")


def validate_item(item: VideoItem, n: int, w: int, h: int) -> None:
    """Check every label of ``item`` against the video (frame count, size); raises naming file + line/field."""
    _check_numbers(item)
    for a in item.masks:
        try:  # every RLE decodes, its counts covering exactly its size (the contract's validating codec)
            rle_counts(a.rle)
        except RLEError as e:
            raise InterchangeError.at(a.provenance, f"mask RLE '{e.field}' {e.reason}") from None
        if not 0 <= a.frame < n:
            raise InterchangeError.at(
                a.provenance, f"frame {a.frame} does not exist (video has {n} frames, 0-based)"
            )
        size = list(a.rle.get("size", []))
        if size != [h, w]:
            raise InterchangeError.at(
                a.provenance,
                f"mask is {size[1] if len(size) == 2 else '?'}x{size[0] if size else '?'} but the video is {w}x{h}",
            )
    for b in item.boxes:
        if not 0 <= b.frame < n:
            raise InterchangeError.at(
                b.provenance, f"frame {b.frame} does not exist (video has {n} frames, 0-based)"
            )
        x0, y0, x1, y1 = b.bbox
        if x0 < -0.5 or y0 < -0.5 or x1 > w + 0.5 or y1 > h + 0.5 or x1 <= x0 or y1 <= y0:
            raise InterchangeError.at(
                b.provenance, f"box {list(b.bbox)} lies outside the {w}x{h} frame or has no area"
            )
    for s in item.segments:
        if not 0 <= s.start < s.end <= n:
            raise InterchangeError.at(
                s.provenance, f"segment [{s.start}, {s.end}) does not fit the video's {n} frames"
            )


def expand_video_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files and folders -> import units (video files, DICOM files, image-sequence folders) and skipped files.

    A folder is an image sequence when it holds images and no video files; images beside videos (cover pictures,
    thumbnails) are skipped and reported."""
    units: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def consider_file(p: Path) -> None:
        if is_junk(p.name):
            return
        if p.suffix.lower() in VIDEO_EXTS or is_dicom(p):
            units.append(p)
        elif p.suffix.lower() not in IMAGE_EXTS:
            skipped.append((str(p), "not a video, DICOM video or image-sequence folder"))

    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            skipped.append((str(p), "does not exist"))
        elif p.is_file():
            if p.suffix.lower() in VIDEO_EXTS or is_dicom(p):
                units.append(p)
            else:
                skipped.append((str(p), "not a video or DICOM video"))
        else:
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not is_junk(d))
                r = Path(root)
                visible = [f for f in files if not is_junk(f)]
                has_images = any(Path(f).suffix.lower() in IMAGE_EXTS for f in visible)
                has_videos = any(Path(f).suffix.lower() in VIDEO_EXTS for f in visible)
                if has_images and not has_videos:
                    units.append(r)  # an image folder is one video (its images are the frames)
                for f in sorted(visible):
                    p_f = r / f
                    if has_images and has_videos and p_f.suffix.lower() in IMAGE_EXTS:
                        skipped.append(
                            (str(p_f), "an image beside videos (not a frame of an image-sequence folder)")
                        )
                    else:
                        consider_file(p_f)
    return units, skipped


def materialise_sequence(frames: Sequence[Path], dest: Path) -> Path:
    """A folder whose images are exactly ``frames`` in order (``000000.ext`` ...), as links (copies where links fail).

    An existing folder is never removed or changed (a stored video may play from it): a folder that already holds
    exactly these frames is reused (a re-import keeps the video's content hash); otherwise the next free name
    ``dest~2``, ``dest~3`` ... is used."""
    names = [f"{k:06d}{f.suffix.lower()}" for k, f in enumerate(frames)]
    for k in range(1, 10_000):
        cand = dest if k == 1 else dest.with_name(f"{dest.name}~{k}")
        if not cand.exists():
            dest = cand
            break
        if cand.is_dir() and sorted(p.name for p in cand.iterdir()) == sorted(names):
            if all(_same_file(cand / n, f) for n, f in zip(names, frames)):
                return cand  # already there (a re-import): keep it, so the video's content hash is unchanged
    else:  # pragma: no cover - 10,000 different sequences of one name
        raise InterchangeError(dest, "too many different frame sequences of this name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent))
    try:
        for name, f in zip(names, frames):
            target = tmp / name
            try:
                target.symlink_to(f.resolve())
            except OSError:
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy2(f, target)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _same_file(link: Path, target: Path) -> bool:
    try:
        if link.is_symlink():
            return link.resolve() == target.resolve()
        return (
            link.stat().st_size == target.stat().st_size
            and link.samefile(target)
            or _same_bytes(link, target)
        )
    except OSError:
        return False


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def video_names(v: Video) -> set[str]:
    """Names a video answers to when matching annotation files: import name, file name, stem, pseudonymous id."""
    meta = v.meta or {}
    out = {Path(v.path).name, Path(v.path).stem}
    if meta.get("name"):
        out |= {str(meta["name"]), Path(str(meta["name"])).stem}
    imp = meta.get("import") or {}
    if imp.get("name"):
        out.add(str(imp["name"]))
    if meta.get("pseudonymous_id"):
        out.add(str(meta["pseudonymous_id"]))
    return out


def item_keys(item: VideoItem) -> list[str]:
    keys = [item.name, Path(item.name).name, Path(item.name).stem]
    if item.source is not None:
        keys += [item.source.name, item.source.stem]
    return keys


def label_sources(item: VideoItem) -> set[str]:
    return {a.provenance.source for a in (*item.masks, *item.boxes, *item.segments, *item.video_labels)}


def already_imported(known: set[str], sources: set[str]) -> bool:
    """True when every file of a unit (``sources``) is among the files a video's labels were imported from."""
    return bool(sources) and sources <= known


def describe_sources(srcs: list[str]) -> str:
    """'a.json' or 'masks/1.jpg, kavsir_bboxes.json in /data/Kvasir-SEG' (at most 3 names, then a count)."""
    if len(srcs) == 1:
        return srcs[0]
    try:
        common = os.path.commonpath(srcs)
        rels = [os.path.relpath(x, common) for x in srcs]
    except ValueError:
        common, rels = "", srcs
    text = ", ".join(rels[:3]) + (f" and {len(rels) - 3} more" if len(rels) > 3 else "")
    return f"{text} in {common}" if common else text


def is_mask_folder(path: Path) -> bool:
    from endoreview.interchange.formats.maskdir import LABELMAP

    return path.is_dir() and (
        (path / LABELMAP).is_file() or any((d / LABELMAP).is_file() for d in path.iterdir() if d.is_dir())
    )


def is_manifest(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return False
    return b"endoreview.training-manifest" in head


def safe_name(name: str) -> str:
    """A single path component made of ``name``: never empty, never ``.``/``..`` (leading dots become ``_``)."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "__"))[:150]
    stripped = out.lstrip(".")
    return "_" * (len(out) - len(stripped)) + stripped if out else "_"
