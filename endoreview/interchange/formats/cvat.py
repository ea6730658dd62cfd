"""CVAT for video 1.1 XML: tracks of boxes, polygons and masks with keyframes and ``outside`` flags (and, read only,
CVAT for images 1.1: per-image boxes, polygons and masks, the image ``id`` being the frame).

Reading follows CVAT's semantics:

* a track's shapes are sorted by frame; a shape with ``outside="1"`` ends the track's visibility until the next
  shape; the last visible shape persists to the task's ``stop_frame`` (CVAT shows it there) unless the video's
  frame count is smaller;
* boxes between two consecutive visible keyframes are linearly interpolated (as CVAT does); polygons and masks keep
  the previous keyframe's shape (their interpolation depends on CVAT's point resampling, which is not reproduced);
  frames listed explicitly (``keyframe="0"`` shapes, as CVAT exports) are taken as written;
* mask ``rle`` is CVAT's: ``", "``-separated run lengths, alternating background/foreground starting with background,
  row-major inside the ``left, top, width, height`` rectangle.

Frame numbers are the task's 0-based frame numbers. The track's ``group_id`` (when > 0, as EndoReview writes it so a box track and a mask track of one
object share it) or else its ``id`` becomes the track id.
Writing emits every annotated frame as a keyframe and an ``outside`` shape after each run, so re-reading gives back
exactly the same frames.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from core_model.contract import RLEError, rle_counts, rle_decode, rle_encode
from endoreview.interchange import limits, raster
from endoreview.interchange.model import (
    BoxAnn,
    Collection,
    InterchangeError,
    MaskAnn,
    Provenance,
)
from endoreview.interchange.util import XNode, check_box, join_ints, parse_float, parse_int, read_xml


def cvat_rle_decode(
    rle: str, left: int, top: int, bw: int, bh: int, height: int, width: int, src: str, line: int
):
    if bw <= 0 or bh <= 0 or left < 0 or top < 0 or left + bw > width or top + bh > height:
        # checked before decoding: a declared 30000x30000 rectangle is never allocated
        raise InterchangeError(
            src, f"mask rectangle {[left, top, bw, bh]} lies outside the {width}x{height} frame", line=line
        )
    try:
        counts = [int(c) for c in rle.replace(" ", "").split(",") if c != ""]
    except ValueError:
        raise InterchangeError(
            src, "mask rle must be comma-separated integers", line=line, field="rle"
        ) from None
    # CVAT's dialect: uncompressed runs in row-major order over the mask's rectangle = COCO's column-major runs
    # over the transposed rectangle, so the one codec decodes (and validates) it
    try:
        crop = rle_decode({"size": [bw, bh], "counts": counts}).T
    except RLEError as e:
        if e.field == "size":
            raise InterchangeError(
                src, f"mask rectangle {[left, top, bw, bh]} {e.reason}", line=line
            ) from None
        raise InterchangeError(
            src,
            f"mask rle covers {sum(counts)} pixels, its {bw}x{bh} rectangle has {bw * bh}"
            if e.reason.startswith("cover")
            else f"mask rle {e.reason}",
            line=line,
            field="rle",
        ) from None
    if left < 0 or top < 0 or left + bw > width or top + bh > height:
        raise InterchangeError(
            src, f"mask rectangle {[left, top, bw, bh]} lies outside the {width}x{height} frame", line=line
        )
    full = np.zeros((height, width), np.uint8)
    full[top : top + bh, left : left + bw] = crop
    return full


def cvat_rle_encode(mask: np.ndarray) -> tuple[str, int, int, int, int] | None:
    bb = raster.mask_bbox(mask)
    if bb is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in bb)
    _, runs = rle_counts(rle_encode(mask[y0:y1, x0:x1].T))  # row-major runs (see cvat_rle_decode)
    return ", ".join(str(int(r)) for r in runs), x0, y0, x1 - x0, y1 - y0


def cvat_rle_from_coco(rle: dict) -> tuple[str, int, int, int, int] | None:
    """:func:`cvat_rle_encode` of a COCO RLE mask, built from its runs alone (a 1080p mask is never decoded)."""
    (h, _w), counts = rle_counts(rle)
    got = row_major_runs(h, counts)
    if got is None:
        return None
    runs, x0, y0, bw, bh = got
    return join_ints(runs), x0, y0, bw, bh


def row_major_runs(h: int, runs) -> tuple[np.ndarray, int, int, int, int] | None:
    """``(runs, left, top, width, height)``: CVAT's row-major runs inside the mask's box, from COCO's column-major
    runs of a mask of height ``h``, in time proportional to the runs (no pixel is visited). Along a box row the
    mask changes where two neighbouring columns differ: the XOR of their foreground row intervals, whose ends are
    the interval ends found an odd number of times; a row's first pixel follows the previous row's last (column
    ``left`` against column ``right - 1`` one row up). ``None`` for an empty mask."""
    runs = np.asarray(runs, np.int64)
    ends = np.cumsum(runs)
    fe = ends[1::2]
    fs = fe - runs[1::2]
    keep = fe > fs
    if not keep.all():
        fs, fe = fs[keep], fe[keep]
    if fs.size == 0 or h == 0:
        return None
    cs, ce = fs // h, (fe - 1) // h
    # split runs at column boundaries: one interval [a, b) of rows per (run, column), columns ascending
    if int((ce - cs).max()) == 0:
        col, a, b = cs, fs - cs * h, fe - cs * h
    else:
        n_pieces = ce - cs + 1
        col = np.repeat(cs, n_pieces) + (
            np.arange(int(n_pieces.sum())) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
        )
        base = col * h
        a = np.maximum(np.repeat(fs, n_pieces), base) - base
        b = np.minimum(np.repeat(fe, n_pieces), base + h) - base
    x0, x1 = int(col[0]), int(col[-1]) + 1
    y0, y1 = int(a.min()), int(b.max())
    bw, bh = x1 - x0, y1 - y0
    # events, key = pair * H + row: every endpoint of column c counts for the pair (c-1, c) and the pair (c, c+1).
    # Written as three ascending blocks (which a stable sort merges in linear time): each column's ends for the pair
    # (c-1, c); the same one pair on for every column but the last; the last column's ends a row down, for the wrap
    # (row y's first pixel against row y-1's last), which is the pair x0 (column x0 against column x1-1)
    H = h + 2
    n = col.size
    m = int(np.searchsorted(col, x1 - 1))  # the last column's intervals are the last ones
    keys = np.empty(4 * n, np.int64)
    own = keys[: 2 * n]
    base = col * H
    np.add(base, a, out=own[0::2])
    np.add(base, b, out=own[1::2])
    np.add(own[: 2 * m], H, out=keys[2 * n : 2 * n + 2 * m])
    np.add(own[2 * m :], (x0 - (x1 - 1)) * H + 1, out=keys[2 * n + 2 * m :])
    keys.sort(kind="stable")
    # an endpoint shared by an even number of intervals cancels (XOR)
    same = keys[1:] == keys[:-1]
    if same.any():
        dup = np.flatnonzero(same)
        if (np.diff(dup) == 1).any():  # three or more equal (touching intervals): keep one of an odd count
            starts = np.flatnonzero(np.concatenate(([True], ~same)))
            counts = np.diff(np.append(starts, keys.size))
            keys = keys[starts[(counts & 1) == 1]]
        else:
            keep = np.ones(keys.size, bool)
            keep[dup] = False
            keep[dup + 1] = False
            keys = keys[keep]
    lo, hi = keys[0::2], keys[1::2]  # XOR intervals [lo, hi) of rows, per pair
    pair = lo // H
    ya = lo - pair * H
    yb = hi - pair * H
    wrap = pair == x0
    if wrap.any():
        np.maximum(ya, y0 + 1, out=ya, where=wrap)
        np.minimum(yb, y1, out=yb, where=wrap)
    L = yb - ya
    ok = L > 0
    if not ok.all():
        pair, ya, L = pair[ok], ya[ok], L[ok]
    total = int(L.sum())
    # first pixel of the box (row y0, column x0): inside one of column x0's intervals (the first ones)?
    k0 = int(np.searchsorted(col, x0, side="right"))
    fg0 = bool(((a[:k0] <= y0) & (b[:k0] > y0)).any())
    if total == 0:
        return np.array([0, bw * bh][1 - fg0 :], np.int64), x0, y0, bw, bh
    # each XOR interval's first change, then one a row further down: positions as a running sum of steps
    at = (ya - y0) * bw + (pair - x0)
    step = np.full(total, bw, np.int64)
    first = np.cumsum(L) - L
    step[first[1:]] = at[1:] - (at[:-1] + bw * (L[:-1] - 1))
    step[0] = at[0]
    pos = np.cumsum(step)
    pos.sort()
    out = np.empty(pos.size + 1 + fg0, np.int64)
    if fg0:
        out[0] = 0
    o = out[int(fg0) :]
    o[0] = pos[0]
    np.subtract(pos[1:], pos[:-1], out=o[1:-1])
    o[-1] = bw * bh - pos[-1]
    return out, x0, y0, bw, bh


def _meta_int(meta: XNode | None, *path: str) -> int | None:
    if meta is None:
        return None
    node = meta.path(*path)
    if node is None or not node.text.strip():
        return None
    try:
        return int(node.text.strip())
    except ValueError:
        return None


def read_cvat_video(
    path: str | os.PathLike,
    *,
    video_name: str | None = None,
    width: int | None = None,
    height: int | None = None,
    num_frames: int | None = None,
    source_name: str | None = None,
    data: bytes | None = None,
) -> Collection:
    src, root = read_xml(path, "annotations", source_name, data)
    meta = root.find("meta")
    task = None
    if meta is not None:
        task = meta.find("task") or meta.find("job")
    col = Collection(layout="cvat-video")
    if root.findall("image") and not root.findall("track"):
        return _read_cvat_images(root, task, src, video_name, num_frames, col)
    w = width or _meta_int(task, "original_size", "width")
    h = height or _meta_int(task, "original_size", "height")
    if w is None or h is None:
        raise InterchangeError(
            src, "frame size unknown: <meta><task><original_size> missing and no video given"
        )
    w, h = limits.check_image_size(src, w, h, field="original_size")
    stop = _meta_int(task, "stop_frame")
    size = _meta_int(task, "size")
    start = _meta_int(task, "start_frame") or 0
    if start:
        col.warn(
            src, f"task starts at source frame {start}; frame numbers are taken as task frames (0-based)"
        )
    last = (
        num_frames - 1 if num_frames else (stop - start if stop is not None else (size - 1 if size else None))
    )
    if last is not None:  # a 500-byte file declaring stop_frame=3000000 must not expand to millions of shapes
        limits.check_frame_count(
            src, last + 1, limit=num_frames, field="stop_frame" if stop is not None else "size"
        )
    name = video_name or (task.findtext("name") if task is not None else None) or Path(src).stem
    item = col.get_or_add(
        name, width=w, height=h, num_frames=num_frames or (last + 1 if last is not None else None)
    )

    expanded = 0
    for track in root.findall("track"):
        label = track.attrib.get("label")
        if not label:
            raise InterchangeError(src, "<track> without label", line=track.line, field="label")
        tid = parse_int(track.attrib.get("id", "0"), src, line=track.line, field="id")
        group = parse_int(track.attrib.get("group_id", "0"), src, line=track.line, field="group_id")
        if group > 0:  # EndoReview writes the object's track id as the group (box and mask tracks share it)
            tid = group
        shapes = [c for c in track.children if c.tag in ("box", "polygon", "mask")]
        others = {c.tag for c in track.children if c.tag not in ("box", "polygon", "mask")}
        if others - {"attribute"}:
            col.warn(
                src, f"track {tid}: shape types {sorted(others)} are not supported; skipped", line=track.line
            )
        parsed = []
        for s in shapes:
            fr = parse_int(s.attrib.get("frame", ""), src, line=s.line, field="frame")
            if fr < 0 or (last is not None and fr > last):
                raise InterchangeError(
                    src, f"frame {fr} does not exist (video has frames 0..{last})", line=s.line, field="frame"
                )
            outside = s.attrib.get("outside", "0") == "1"
            keyframe = s.attrib.get("keyframe", "1") == "1"
            geom = None
            if not outside:
                geom = _shape_geometry(s, src, w, h, col)
            parsed.append((fr, outside, keyframe, s.tag, geom, s.line))
        parsed.sort(key=lambda t: t[0])
        for k, (fr, outside, _kf, tag, geom, line) in enumerate(parsed):
            if outside:
                continue
            nxt = parsed[k + 1] if k + 1 < len(parsed) else None
            end = nxt[0] if nxt else (last + 1 if last is not None else fr + 1)
            expanded += max(end, fr + 1) - fr
            if expanded > limits.MAX_EXPANDED:
                raise InterchangeError(
                    src,
                    f"tracks expand to more than {limits.MAX_EXPANDED} annotations (the import limit)",
                    line=line,
                    field=f"track {tid}",
                )
            for f in range(fr, max(end, fr + 1)):
                prov = Provenance(src, line=line, field=f"track {tid}")
                if tag == "box":
                    box = geom
                    if nxt and not nxt[1] and nxt[3] == "box" and f > fr:
                        t = (f - fr) / (nxt[0] - fr)
                        box = tuple(a + (b - a) * t for a, b in zip(geom, nxt[4]))
                    item.boxes.append(BoxAnn(f, label, box, prov, tid))
                else:
                    item.masks.append(MaskAnn(f, label, geom, prov, tid))
    for tag in root.findall("tag"):
        col.warn(src, "frame tags are not imported", line=tag.line)
    return col


def _read_cvat_images(
    root: XNode, task: XNode | None, src: str, video_name: str | None, num_frames: int | None, col: Collection
) -> Collection:
    """'CVAT for images 1.1': ``<image id= name= width= height=>`` with boxes, polygons and masks. The image ``id``
    is the task's 0-based frame number."""
    col.layout = "cvat-images"
    name = video_name or (task.findtext("name") if task is not None else None) or Path(src).stem
    item = col.get_or_add(name, num_frames=num_frames)
    for im in root.findall("image"):
        fr = parse_int(im.attrib.get("id", ""), src, line=im.line, field="id")
        w = parse_int(im.attrib.get("width", ""), src, line=im.line, field="width")
        h = parse_int(im.attrib.get("height", ""), src, line=im.line, field="height")
        if fr < 0 or (num_frames is not None and fr >= num_frames) or w <= 0 or h <= 0:
            raise InterchangeError(src, f"image {fr} ({w}x{h}) is not a frame of the video", line=im.line)
        limits.check_image_size(src, w, h, field=f"image {fr}")
        item.width, item.height = w, h
        for s in im.children:
            if s.tag not in ("box", "polygon", "mask"):
                if s.tag != "tag":
                    col.warn(src, f"<{s.tag}> shapes are not supported; skipped", line=s.line)
                continue
            label = s.attrib.get("label")
            if not label:
                raise InterchangeError(src, f"<{s.tag}> without label", line=s.line, field="label")
            geom = _shape_geometry(s, src, w, h, col)
            prov = Provenance(src, line=s.line, field=f"image {fr}")
            if s.tag == "box":
                item.boxes.append(BoxAnn(fr, label, geom, prov))
            else:
                item.masks.append(MaskAnn(fr, label, geom, prov))
    return col


def _shape_geometry(s: XNode, src: str, w: int, h: int, col: Collection):
    a = s.attrib
    if s.tag == "box":
        vals = []
        for k in ("xtl", "ytl", "xbr", "ybr"):
            if k not in a:
                raise InterchangeError(src, f"<box> without {k}", line=s.line, field=k)
            vals.append(parse_float(a[k], src, line=s.line, field=k))
        return check_box(tuple(vals), w, h, Provenance(src, line=s.line), col.issues)
    if s.tag == "polygon":
        pts = []
        for pair in a.get("points", "").split(";"):
            xy = pair.split(",")
            if len(xy) != 2:
                raise InterchangeError(
                    src, f"polygon point {pair!r} is not 'x,y'", line=s.line, field="points"
                )
            pts += [
                parse_float(xy[0], src, line=s.line, field="points"),
                parse_float(xy[1], src, line=s.line, field="points"),
            ]
        if len(pts) < 6:
            raise InterchangeError(src, "polygon needs at least 3 points", line=s.line, field="points")
        pts = limits.check_polygon(src, pts, w, h, line=s.line, field="points")
        return rle_encode(raster.polygons_to_mask([pts], h, w))
    # mask
    for k in ("rle", "left", "top", "width", "height"):
        if k not in a:
            raise InterchangeError(src, f"<mask> without {k}", line=s.line, field=k)
    left, top, bw, bh = (
        parse_int(a[k], src, line=s.line, field=k) for k in ("left", "top", "width", "height")
    )
    m = cvat_rle_decode(a["rle"], left, top, bw, bh, h, w, src, s.line)
    return rle_encode(m)


def cvat_video_xml(
    name: str,
    width: int,
    height: int,
    num_frames: int,
    boxes: list[BoxAnn],
    masks: list[MaskAnn],
    labels: list[str],
) -> tuple[str, list[str]]:
    """One video's CVAT for video 1.1 document. Returns (xml, dropped-notes)."""
    dropped: set[str] = set()
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations>",
        "  <version>1.1</version>",
        "  <meta>",
        "    <task>",
        f"      <name>{_esc(name)}</name>",
        f"      <size>{num_frames}</size>",
        "      <mode>interpolation</mode>",
        "      <start_frame>0</start_frame>",
        f"      <stop_frame>{max(num_frames - 1, 0)}</stop_frame>",
        "      <labels>",
    ]
    out += [f"        <label><name>{_esc(n)}</name><type>any</type></label>" for n in labels]
    out += [
        "      </labels>",
        f"      <original_size><width>{width}</width><height>{height}</height></original_size>",
        "    </task>",
        "  </meta>",
    ]
    groups: dict[tuple, list] = defaultdict(list)
    next_free = max([a.track_id for a in (*boxes, *masks) if a.track_id is not None] or [0]) + 1
    for a in boxes:
        groups[("box", a.label, a.track_id if a.track_id is not None else ("u", id(a)))].append(a)
    for a in masks:
        groups[("mask", a.label, a.track_id if a.track_id is not None else ("u", id(a)))].append(a)
    ids_used: set[int] = set()
    for (kind, label, key), anns in sorted(groups.items(), key=lambda kv: (str(kv[0][2]), kv[0][0])):
        if isinstance(key, int) and key not in ids_used:
            tid = key
        else:
            tid = next_free
            next_free += 1
        ids_used.add(tid)
        if any(a.score is not None for a in anns):
            dropped.add("scores")
        anns.sort(key=lambda a: a.frame)
        frames = [a.frame for a in anns]
        if len(set(frames)) != len(frames):
            dropped.add("second shape of a track on the same frame (one per track per frame in CVAT)")
        group = f' group_id="{key}"' if isinstance(key, int) and key > 0 else ""
        out.append(f'  <track id="{tid}" label={quoteattr(label)} source="manual"{group}>')
        prev = None
        last_a = None
        seen = set()
        for a in anns:
            if a.frame in seen:
                continue
            seen.add(a.frame)
            if prev is not None and a.frame > prev + 1:
                out.append(_shape_xml(kind, last_a, prev + 1, outside=True))
            out.append(_shape_xml(kind, a, a.frame, outside=False))
            prev, last_a = a.frame, a
        if prev is not None and prev + 1 < num_frames:
            out.append(_shape_xml(kind, last_a, prev + 1, outside=True))
        out.append("  </track>")
    out.append("</annotations>")
    return "\n".join(out) + "\n", sorted(dropped)


def _shape_body(kind: str, a) -> str:
    """A shape's geometry attributes (the same for its keyframe and its closing "outside" shape)."""
    if kind == "box":
        return _BOX_BODY % tuple(a.bbox)
    return _mask_body(a.rle["size"], a.rle["counts"])


def _mask_body(size, counts) -> str:
    """A mask shape's attributes from its COCO RLE (a worker process's task at procedure scale)."""
    enc = cvat_rle_from_coco({"size": size, "counts": counts})
    if enc is None:
        h, w = size
        enc = (str(w * h), 0, 0, int(w), int(h))
    rle, left, top, bw, bh = enc
    return f'rle="{rle}" left="{left}" top="{top}" width="{bw}" height="{bh}"'


#: masks in one part from which worker processes convert them (below that, starting them costs more)
PARALLEL_MASKS = 128
MASK_WORKERS = 2


_SHAPE_FLAGS = 'occluded="0" keyframe="1" z_order="0"'
_BOX_BODY = 'xtl="%.4f" ytl="%.4f" xbr="%.4f" ybr="%.4f"'  # a box shape's geometry attributes
_TRACK_START = '  <track id="'  # how a track's line starts ('<' is never in a value)


def _shape_xml(kind: str, a, frame: int, *, outside: bool, body: str | None = None) -> str:
    common = f'frame="{frame}" outside="{int(outside)}" {_SHAPE_FLAGS}'
    return f"    <{kind} {common} {body if body is not None else _shape_body(kind, a)}></{kind}>"


def _esc(s: str) -> str:
    from xml.sax.saxutils import escape

    return escape(s)


class CvatVideoWriter:
    """One video's CVAT for video 1.1 file written a part of the video at a time, in bounded memory (the same
    document :func:`cvat_video_xml` builds, tracks in another order): each track's shapes go to a file of its own
    beside the output as they arrive (untracked shapes to one file, as one-shape tracks), and :meth:`finish` joins
    them under the header. Add parts in frame order; two are held at a time (one written, the next one's masks
    converted meanwhile)."""

    def __init__(self, path: str | os.PathLike, name: str, width: int, height: int, num_frames: int):
        import tempfile

        self.path = Path(path)
        self.name, self.width, self.height, self.num_frames = name, width, height, num_frames
        self.parts = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self.groups: dict[tuple, dict] = {}
        self.labels: set[str] = set()
        self.untracked = 0
        self.dropped: set[str] = set()
        self.quoted: dict[str, str] = {}  # label -> its quoted attribute value
        self.has_scores = False
        self.pool = None  # worker processes converting masks (see _mask_bodies), started on a long video
        # untracked shapes become one-shape tracks numbered after the tracked ones (known at the end): they are
        # written numbered from 1, right when the video has no tracked shape, renumbered when it has
        self.loose_base = 1
        # the part added last, written when the next one comes (or at finish)
        self.waiting: tuple | None = None

    def add(self, boxes: list[BoxAnn], masks: list[MaskAnn]) -> None:
        # the masks' runs (most of the work at procedure scale) are converted by worker processes while the part
        # before is written and the caller reads the next one: a part is written when the next one is added
        part = (boxes, masks, self._mask_bodies(masks))
        before, self.waiting = self.waiting, part
        if before is not None:
            self._write(*before)

    def _write(self, boxes: list[BoxAnn], masks: list[MaskAnn], pending) -> None:
        """Write a part's shapes to the track files; ``pending``: its masks' bodies (see :meth:`_mask_bodies`)."""
        lines: dict[Path, list[str]] = defaultdict(list)
        loose = self.parts / "untracked.xml"
        quoted = self.quoted
        body_of: dict[int, str] = {}
        for kind, anns in (("box", boxes), ("mask", masks)):
            anns = sorted(anns, key=lambda a: a.frame)
            for a in anns:
                if a.label not in quoted:
                    quoted[a.label] = quoteattr(a.label)
                    self.labels.add(a.label)
            if not self.has_scores:
                self.has_scores = any(a.score is not None for a in anns)
            if kind == "box":
                # the untracked boxes (a model's suggestions: a million in a procedure) in one format call
                lines[loose] += self._loose_boxes([a for a in anns if a.track_id is None])
            else:
                body_of = {id(a): b for a, b in zip(masks, pending)}
            tag_open, tag_close = f'    <{kind} frame="', f"></{kind}>"
            for a in anns:
                if a.track_id is None:
                    if kind == "box":
                        continue  # written above
                    # a one-shape track; its id is given when the file is joined (after the tracked ids)
                    body = body_of[id(a)]
                    f = a.frame
                    shapes = f'{tag_open}{f}" outside="0" {_SHAPE_FLAGS} {body}{tag_close}'
                    if f + 1 < self.num_frames:
                        shapes += f'\n{tag_open}{f + 1}" outside="1" {_SHAPE_FLAGS} {body}{tag_close}'
                    tid = self.loose_base + self.untracked
                    lines[loose].append(
                        f'{_TRACK_START}{tid}" label={quoted[a.label]} source="manual">\n{shapes}\n  </track>'
                    )
                    self.untracked += 1
                    continue
                body = body_of[id(a)] if kind == "mask" else _shape_body(kind, a)
                key = (kind, a.label, a.track_id)
                st = self.groups.get(key)
                if st is None:
                    st = self.groups[key] = {
                        "prev": None,
                        "last": None,
                        "body": None,
                        "file": self.parts / f"g{len(self.groups)}",
                    }
                if st["prev"] is not None and a.frame <= st["prev"]:
                    self.dropped.add(
                        "second shape of a track on the same frame (one per track per frame in CVAT)"
                    )
                    continue
                out = lines[st["file"]]
                if st["prev"] is not None and a.frame > st["prev"] + 1:
                    out.append(_shape_xml(kind, st["last"], st["prev"] + 1, outside=True, body=st["body"]))
                out.append(_shape_xml(kind, a, a.frame, outside=False, body=body))
                st["prev"], st["last"], st["body"] = a.frame, a, body
        for p, text in lines.items():
            if text:
                with open(p, "a", encoding="utf-8") as f:
                    f.write("\n".join(text))
                    f.write("\n")

    def _loose_boxes(self, boxes: list[BoxAnn]) -> list[str]:
        """Untracked boxes (in frame order) as one-shape tracks, numbered on from :attr:`untracked`: their text
        (the same :func:`_shape_xml` gives, tracks joined by line ends) made by one ``%`` format for them all."""
        if not boxes:
            return []
        quoted, tid = self.quoted, self.loose_base + self.untracked
        self.untracked += len(boxes)
        # each box's geometry formatted once (its keyframe and its closing "outside" shape repeat it)
        flat: list = []
        for a in boxes:
            flat += a.bbox
        bodies = (((_BOX_BODY + "\n") * len(boxes)) % tuple(flat)).split("\n")
        shape = '    <box frame="%d" outside="{}" ' + _SHAPE_FLAGS + " %s></box>"
        head = _TRACK_START + '%d" label=%s source="manual">\n'
        # a box on the video's last frame has no closing "outside" shape (boxes are in frame order: they come last)
        n_last = sum(
            1 for _ in itertools.takewhile(lambda a: a.frame + 1 >= self.num_frames, reversed(boxes))
        )
        out = []
        for lo, hi, closed in ((0, len(boxes) - n_last, True), (len(boxes) - n_last, len(boxes), False)):
            if lo == hi:
                continue
            vals: list = []
            if closed:
                one = head + shape.format(0) + "\n" + shape.format(1) + "\n  </track>\n"
                for a, body in zip(boxes[lo:hi], bodies[lo:hi]):
                    f = a.frame
                    vals += (tid, quoted[a.label], f, body, f + 1, body)
                    tid += 1
            else:
                one = head + shape.format(0) + "\n  </track>\n"
                for a, body in zip(boxes[lo:hi], bodies[lo:hi]):
                    vals += (tid, quoted[a.label], a.frame, body)
                    tid += 1
            out.append(((one * (hi - lo)) % tuple(vals))[:-1])  # its tracks, one a line as joined
        return out

    def _mask_bodies(self, masks: list[MaskAnn]):
        """The masks' shape attributes (:func:`_mask_body`), in order: an iterator over results worker processes
        compute while the caller writes the boxes, once a part has enough masks to be worth it."""
        if len(masks) < PARALLEL_MASKS or (os.cpu_count() or 1) < 2 or not sys.platform.startswith("linux"):
            return [_mask_body(m.rle["size"], m.rle["counts"]) for m in masks]
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # forked: a spawned worker would run the exporting program's main module again (the CLI, a job); the
            # workers touch nothing of the parent but this module's pure functions
            self.pool = ProcessPoolExecutor(
                min(MASK_WORKERS, os.cpu_count() or 1), mp_context=multiprocessing.get_context("fork")
            )
        sizes = [m.rle["size"] for m in masks]
        counts = [m.rle["counts"] for m in masks]
        return self.pool.map(_mask_body, sizes, counts, chunksize=max(1, len(masks) // (4 * MASK_WORKERS)))

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def finish(self, dropped: set[str]) -> Path:
        """Join the parts into the output file (written under a temporary name, then renamed); returns its path."""
        import shutil

        if self.waiting is not None:
            before, self.waiting = self.waiting, None
            self._write(*before)
        self.close_pool()
        for (kind, _label, _tid), st in self.groups.items():
            if st["prev"] is not None and st["prev"] + 1 < self.num_frames:
                with open(st["file"], "a", encoding="utf-8") as f:
                    f.write(
                        _shape_xml(kind, st["last"], st["prev"] + 1, outside=True, body=st["body"]) + "\n"
                    )
        head = [
            '<?xml version="1.0" encoding="utf-8"?>',
            "<annotations>",
            "  <version>1.1</version>",
            "  <meta>",
            "    <task>",
            f"      <name>{_esc(self.name)}</name>",
            f"      <size>{self.num_frames}</size>",
            "      <mode>interpolation</mode>",
            "      <start_frame>0</start_frame>",
            f"      <stop_frame>{max(self.num_frames - 1, 0)}</stop_frame>",
            "      <labels>",
            *(f"        <label><name>{_esc(n)}</name><type>any</type></label>" for n in sorted(self.labels)),
            "      </labels>",
            f"      <original_size><width>{self.width}</width><height>{self.height}</height></original_size>",
            "    </task>",
            "  </meta>",
        ]
        tmp = self.parts / "out.xml"
        next_free = max([k[2] for k in self.groups] or [0]) + 1
        used: set[int] = set()
        with open(tmp, "w", encoding="utf-8") as out:
            out.write("\n".join(head) + "\n")
            for key in sorted(self.groups, key=lambda k: (str(k[2]), k[0])):
                kind, label, track = key
                if track not in used:
                    tid = track
                else:
                    tid, next_free = next_free, next_free + 1
                used.add(tid)
                group = f' group_id="{track}"' if track > 0 else ""
                out.write(f'  <track id="{tid}" label={quoteattr(label)} source="manual"{group}>\n')
                with open(self.groups[key]["file"], encoding="utf-8") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
                out.write("  </track>\n")
            loose = self.parts / "untracked.xml"
            if loose.exists():
                out.flush()
                with open(loose, "rb") as f:
                    if next_free == self.loose_base:  # numbered right as written: copied as it is
                        shutil.copyfileobj(f, out.buffer, 1 << 20)
                    else:
                        _renumber_tracks(f, out.buffer, next_free)
            out.write("</annotations>\n")
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts, ignore_errors=True)
        if self.has_scores:
            self.dropped.add("scores")
        dropped.update(self.dropped)
        return self.path

    def abort(self) -> None:
        import shutil

        self.waiting = None
        self.close_pool()
        shutil.rmtree(self.parts, ignore_errors=True)


def _renumber_tracks(src, dst, first_id: int, block: int = 1 << 20) -> None:
    """Copy a part file of tracks (binary ``src`` to ``dst``), numbering them from ``first_id`` in order: read in
    blocks cut at a line end, split where a track's line starts, each id replaced."""
    mark = _TRACK_START.encode()
    n = first_id
    rest = b""
    while True:
        data = src.read(block)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        pieces = data.split(mark)
        out = [pieces[0]]
        for piece in pieces[1:]:
            out.append(b"%s%d%s" % (mark, n, piece[piece.index(b'"') :]))
            n += 1
        dst.write(b"".join(out))
    dst.write(rest)
