"""The in-memory intermediate representation every reader produces and every writer consumes.

Conventions (docs/interfaces.md): frames are 0-based, segments are ``[start, end)``, boxes are
``[x0, y0, x1, y1]`` in pixels with x1/y1 exclusive, masks are COCO RLE dicts with ``str`` counts. Readers convert
1-based dataset numbering at the border; nothing 1-based ever enters these classes.

Every annotation carries a :class:`Provenance` (source file + line or field), so that the store can record where an
imported label came from and an error can point at the exact place in the input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provenance:
    """Where one annotation came from: a file and, when known, the line (1-based, as editors show) or field; once
    imported, also the format it was read as and the importer's version (what the store keeps per label)."""

    source: str
    line: int | None = None
    field: str | None = None
    format: str | None = None
    importer: str | None = None

    def describe(self) -> str:
        """``file:line [field]``: the place in the file."""
        out = self.source
        if self.line is not None:
            out += f":{self.line}"
        if self.field:
            out += f" [{self.field}]"
        return out

    def details(self) -> str:
        """The place, the format and the importer, for a reviewer: ``a.csv:2 (csv, EndoReview 0.1.0 interchange)``."""
        how = [self.format or "format not recorded", self.importer or "importer version not recorded"]
        return f"{self.describe()} ({', '.join(how)})"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source}
        if self.line is not None:
            d["line"] = self.line
        if self.field:
            d["field"] = self.field
        if self.format:
            d["format"] = self.format
        if self.importer:
            d["importer"] = self.importer
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Provenance:
        line = d.get("line")
        return cls(
            str(d.get("source") or "?"),
            int(line) if line is not None else None,
            d.get("field") or None,
            d.get("format") or None,
            d.get("importer") or None,
        )


class InterchangeError(ValueError):
    """Malformed input: names the file, the line or field, and the reason."""

    def __init__(
        self, file: str | os.PathLike, reason: str, *, line: int | None = None, field: str | None = None
    ):
        self.file = str(file)
        self.reason = reason
        self.line = line
        self.field = field
        where = self.file
        if line is not None:
            where += f":{line}"
        if field:
            where += f" [{field}]"
        super().__init__(f"{where}: {reason}")

    @classmethod
    def at(cls, prov: Provenance, reason: str) -> InterchangeError:
        return cls(prov.source, reason, line=prov.line, field=prov.field)


@dataclass(frozen=True)
class Issue:
    """A non-fatal finding (a resized mask, a clipped box, a skipped file): reported, never silent."""

    file: str
    reason: str
    line: int | None = None
    field: str | None = None
    severity: str = "warning"  # "warning" (handled per a documented rule) | "error" (unit skipped)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]"
        return f"{self.severity}: {where}: {self.reason}"

    @classmethod
    def at(cls, prov: Provenance, reason: str) -> Issue:
        """A warning about the annotation ``prov`` names (its file, line and field)."""
        return cls(prov.source, reason, line=prov.line, field=prov.field)


@dataclass
class MaskAnn:
    frame: int
    label: str
    rle: dict[str, Any]
    provenance: Provenance
    track_id: int | None = None
    score: float | None = None
    state: str | None = (
        None  # review state (suggested, accepted, edited, manual) when exported from the store
    )
    # (box (x0, y0, x1, y1) | None, pixel count) when known without parsing the RLE (recorded with a model's mask)
    extent: tuple[tuple[float, float, float, float] | None, int] | None = None


@dataclass
class BoxAnn:
    frame: int
    label: str
    bbox: tuple[float, float, float, float]
    provenance: Provenance
    track_id: int | None = None
    score: float | None = None
    state: str | None = None


@dataclass
class SegmentAnn:
    start: int
    end: int
    label: str
    provenance: Provenance
    score: float | None = None
    state: str | None = None


@dataclass
class VideoLabelAnn:
    label: str
    provenance: Provenance
    score: float | None = None
    state: str | None = None


@dataclass
class VideoItem:
    """One video (a file, or an ordered list of frame images) with its labels.

    ``frame_files`` (when set) is the exact 0-based frame order; the importer materialises it as an image-sequence
    folder that ``VideoReader`` opens. ``source`` is a video file or a folder whose images are the frames.
    """

    name: str
    source: Path | None = None
    frame_files: list[Path] | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    fps: float | None = None
    split: str | None = None
    masks: list[MaskAnn] = field(default_factory=list)
    boxes: list[BoxAnn] = field(default_factory=list)
    segments: list[SegmentAnn] = field(default_factory=list)
    video_labels: list[VideoLabelAnn] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_count(self) -> int | None:
        if self.num_frames is not None:
            return self.num_frames
        if self.frame_files is not None:
            return len(self.frame_files)
        return None

    def n_labels(self) -> int:
        return len(self.masks) + len(self.boxes) + len(self.segments) + len(self.video_labels)

    def label_names(self) -> set[str]:
        names = {a.label for a in self.masks} | {a.label for a in self.boxes}
        names |= {a.label for a in self.segments} | {a.label for a in self.video_labels}
        return names


@dataclass
class Collection:
    """What a reader returns: videos with labels, plus everything it had to report."""

    videos: list[VideoItem] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    layout: str = ""
    root: Path | None = None

    def video(self, name: str) -> VideoItem:
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(name)

    def get_or_add(self, name: str, **kwargs: Any) -> VideoItem:
        for v in self.videos:
            if v.name == name:
                return v
        v = VideoItem(name=name, **kwargs)
        self.videos.append(v)
        return v

    def extend(self, other: Collection) -> None:
        self.videos.extend(other.videos)
        self.issues.extend(other.issues)

    def warn(self, file: str | os.PathLike, reason: str, **kw: Any) -> None:
        self.issues.append(Issue(str(file), reason, **kw))
