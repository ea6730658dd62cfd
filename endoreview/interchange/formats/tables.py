"""Text tables: the temporal segment CSV, video-label CSV, and Endo-FM's list formats.

* Segment CSV: header ``video,start_frame,end_frame,label`` (0-based, end exclusive, as the store's segments);
  optional ``score`` column.
* Video-label CSV: ``video,label`` (the PolypDiag split format is the same without a header: ``path,label``).
* Pre-training list CSV (``data/pretrain/train.csv``): ``<path>,-1`` per clip, exactly two fields.

Spreadsheet safety: a text cell the segment or video-label CSV writes that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading ``'`` so that a spreadsheet shows it as text instead of running it as a
formula (a video or label name is free text from datasets and users); the readers remove that one ``'`` again, so
exported files import back unchanged. Numbers are written as numbers. Endo-FM's ``train.csv`` is read by Endo-FM,
not a spreadsheet, and is written verbatim.
* Clip list (``sun_seg.txt``, CVC split lists): ``<clip> <start> <count> <label>`` whitespace-separated; ``start``
  uses the dataset's own numbering (``base`` says whether it is 0- or 1-based) and is converted to 0-based here.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from endoreview.interchange.model import Collection, InterchangeError, Provenance, SegmentAnn, VideoLabelAnn
from endoreview.interchange.util import parse_float, parse_int

SEGMENT_HEADER = ["video", "start_frame", "end_frame", "label"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate (see the module docstring)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def unsafe_cell(text: str) -> str:
    """The inverse of :func:`safe_cell` on a read cell."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def _read_text(path: str | os.PathLike, src: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InterchangeError(src, f"cannot be read ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InterchangeError(src, f"not UTF-8 text (byte {e.start})") from None


def _csv_rows(text: str, src: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as e:
        raise InterchangeError(src, f"not a valid CSV ({e})", line=reader.line_num) from None
    return rows


def read_segment_csv(
    path: str | os.PathLike, *, num_frames: dict[str, int] | None = None, source_name: str | None = None
) -> Collection:
    """Parse a segment CSV. ``num_frames`` (video name -> frame count) enables the range check at read time."""
    src = source_name or str(path)
    text = _read_text(path, src)
    rows = _csv_rows(text, src)
    if not rows:
        raise InterchangeError(src, "empty file; expected header video,start_frame,end_frame,label", line=1)
    header = [h.strip().lower() for h in rows[0]]
    missing = [h for h in SEGMENT_HEADER if h not in header]
    if missing:
        raise InterchangeError(
            src, f"header lacks column(s) {missing}; expected {','.join(SEGMENT_HEADER)}", line=1
        )
    idx = {h: header.index(h) for h in header}
    col = Collection(layout="segment-csv")
    for ln, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InterchangeError(src, f"{len(row)} fields, header has {len(header)}", line=ln)
        video = unsafe_cell(row[idx["video"]].strip())
        if not video:
            raise InterchangeError(src, "empty video name", line=ln, field="video")
        start = parse_int(row[idx["start_frame"]], src, line=ln, field="start_frame")
        end = parse_int(row[idx["end_frame"]], src, line=ln, field="end_frame")
        label = unsafe_cell(row[idx["label"]].strip())
        if not label:
            raise InterchangeError(src, "empty label", line=ln, field="label")
        if start < 0 or end <= start:
            raise InterchangeError(
                src, f"[{start}, {end}) is not a non-empty 0-based range (end is exclusive)", line=ln
            )
        n = (num_frames or {}).get(video)
        if n is not None and end > n:
            raise InterchangeError(
                src, f"segment ends at {end} but video {video!r} has {n} frames", line=ln, field="end_frame"
            )
        score = None
        if "score" in idx and row[idx["score"]].strip():
            score = parse_float(row[idx["score"]], src, line=ln, field="score")
        col.get_or_add(video).segments.append(SegmentAnn(start, end, label, Provenance(src, line=ln), score))
    return col


def segment_csv_text(col: Collection) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    has_score = any(s.score is not None for v in col.videos for s in v.segments)
    has_state = any(s.state is not None for v in col.videos for s in v.segments)
    w.writerow(SEGMENT_HEADER + (["score"] if has_score else []) + (["state"] if has_state else []))
    for v in col.videos:
        for s in sorted(v.segments, key=lambda s: (s.start, s.end, s.label)):
            row = [safe_cell(v.name), s.start, s.end, safe_cell(s.label)]
            if has_score:
                row.append("" if s.score is None else f"{s.score:.6g}")
            if has_state:
                row.append(s.state or "")
            w.writerow(row)
    return buf.getvalue()


def read_video_label_csv(
    path: str | os.PathLike, *, source_name: str | None = None, header: bool | None = None
) -> list[tuple[str, str, Provenance]]:
    """``video,label`` rows (header optional). Returns (video, label, provenance) in file order."""
    src = source_name or str(path)
    text = _read_text(path, src)
    out = []
    ncols = 2
    for ln, row in enumerate(_csv_rows(text, src), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if ln == 1 and (
            header or (header is None and [c.strip().lower() for c in row[:2]] == ["video", "label"])
        ):
            if [c.strip().lower() for c in row] == ["video", "label", "state"]:
                ncols = 3  # written by EndoReview with each label's review state (not imported)
            continue
        if len(row) != ncols:
            raise InterchangeError(
                src, f"expected {ncols} comma-separated fields 'video,label', got {len(row)}", line=ln
            )
        video, label = unsafe_cell(row[0].strip()), unsafe_cell(row[1].strip())
        if not video or not label:
            raise InterchangeError(src, "empty video or label", line=ln)
        out.append((video, label, Provenance(src, line=ln)))
    return out


def video_label_csv_text(col: Collection) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    has_state = any(lab.state is not None for v in col.videos for lab in v.video_labels)
    w.writerow(["video", "label"] + (["state"] if has_state else []))
    for v in col.videos:
        for lab in v.video_labels:
            w.writerow([safe_cell(v.name), safe_cell(lab.label)] + ([lab.state or ""] if has_state else []))
    return buf.getvalue()


def add_video_labels(col: Collection, rows: list[tuple[str, str, Provenance]]) -> None:
    for video, label, prov in rows:
        col.get_or_add(video).video_labels.append(VideoLabelAnn(label, prov))


@dataclass(frozen=True)
class ClipLine:
    clip: str
    start: int  # 0-based
    count: int
    label: str
    provenance: Provenance


def read_pretrain_csv(
    path: str | os.PathLike, *, source_name: str | None = None
) -> list[tuple[str, Provenance]]:
    """Endo-FM ``train.csv``: ``<path>,-1`` lines (exactly two comma-separated fields, label unused)."""
    src = source_name or str(path)
    out = []
    for ln, line in enumerate(_read_text(path, src).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise InterchangeError(src, f"expected '<path>,<label>' (2 fields), got {len(parts)}", line=ln)
        if not parts[0].strip():
            raise InterchangeError(src, "empty path", line=ln)
        out.append((parts[0].strip(), Provenance(src, line=ln)))
    return out


def pretrain_csv_text(paths: list[str]) -> str:
    return "".join(f"{p},-1\n" for p in paths)


def read_clip_list(
    path: str | os.PathLike, *, base: int = 1, source_name: str | None = None
) -> list[ClipLine]:
    """``clip start count label`` lines; ``start`` is converted from the list's ``base`` to 0-based."""
    src = source_name or str(path)
    out = []
    for ln, line in enumerate(_read_text(path, src).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise InterchangeError(
                src, f"expected 'clip start count label' (4 fields), got {len(parts)}", line=ln
            )
        start = parse_int(parts[1], src, line=ln, field="start")
        count = parse_int(parts[2], src, line=ln, field="count")
        if start < base:
            raise InterchangeError(
                src, f"start {start} is below the list's first frame number {base}", line=ln, field="start"
            )
        if count <= 0:
            raise InterchangeError(src, f"count must be positive, got {count}", line=ln, field="count")
        out.append(ClipLine(parts[0], start - base, count, parts[3], Provenance(src, line=ln)))
    return out
