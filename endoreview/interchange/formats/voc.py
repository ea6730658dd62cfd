"""Pascal VOC XML (one file per image): boxes with class names.

VOC coordinates are 1-based and inclusive (the VOC devkit convention): a box ``xmin=1, xmax=10`` covers pixels
0..9, so it becomes ``x0 = xmin - 1, x1 = xmax`` here, and the writer does the inverse. Integer boxes round-trip
exactly; fractional boxes are rounded outward on export (listed as dropped precision).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from xml.sax.saxutils import escape

from endoreview.interchange.model import BoxAnn, Collection, InterchangeError, Issue, Provenance, VideoItem
from endoreview.interchange.util import (
    check_box,
    is_junk,
    natural_key,
    parse_float,
    parse_int,
    read_xml,
    set_frame_names,
)


def read_voc(
    path: str | os.PathLike, *, source_name: str | None = None, data: bytes | None = None
) -> tuple[dict, list[tuple[str, tuple[float, float, float, float], Provenance, float | None]], list[Issue]]:
    """Parse one VOC XML. Returns ({'filename', 'width', 'height'}, [(label, bbox, provenance, score)], issues)."""
    src, root = read_xml(path, "annotation", source_name, data)
    size = root.find("size")
    width = height = None
    if size is not None:
        wn, hn = size.find("width"), size.find("height")
        if wn is None or hn is None:
            raise InterchangeError(src, "<size> needs <width> and <height>", line=size.line, field="size")
        width = parse_int(wn.text, src, line=wn.line, field="size.width")
        height = parse_int(hn.text, src, line=hn.line, field="size.height")
        if width <= 0 or height <= 0:
            # some tools write 0x0 when they did not know the size: treat as unknown
            width = height = None
    info = {
        "filename": root.findtext("filename") or "",
        "width": width,
        "height": height,
        "frame_index_base": None,
    }
    fib = root.path("source", "frame_index_base")
    if fib is not None and fib.text.strip() in ("0", "1"):
        info["frame_index_base"] = int(fib.text.strip())  # written by EndoReview: the file name is the frame
    issues: list[Issue] = []
    out = []
    for k, obj in enumerate(root.findall("object")):
        where = f"object[{k}]"
        name = obj.findtext("name")
        if not name:
            raise InterchangeError(src, "<object> without <name>", line=obj.line, field=f"{where}.name")
        bb = obj.find("bndbox")
        if bb is None:
            raise InterchangeError(src, "<object> without <bndbox>", line=obj.line, field=f"{where}.bndbox")
        vals = []
        for t in ("xmin", "ymin", "xmax", "ymax"):
            n = bb.find(t)
            if n is None:
                raise InterchangeError(
                    src, f"<bndbox> without <{t}>", line=bb.line, field=f"{where}.bndbox.{t}"
                )
            vals.append(parse_float(n.text, src, line=n.line, field=f"{where}.bndbox.{t}"))
        xmin, ymin, xmax, ymax = vals
        prov = Provenance(src, line=bb.line, field=f"{where}.bndbox")
        box = check_box((xmin - 1, ymin - 1, xmax, ymax), width, height, prov, issues)
        score_txt = obj.findtext("score")
        score = parse_float(score_txt, src, line=obj.line, field=f"{where}.score") if score_txt else None
        out.append((name, box, prov, score))
    return info, out, issues


def voc_xml(
    filename: str,
    width: int,
    height: int,
    boxes: list[tuple[str, tuple[float, float, float, float], float | None]],
    folder: str = "",
) -> tuple[str, list[str]]:
    """Write one VOC annotation. Returns (xml text, dropped-notes)."""
    dropped = set()
    lines = [
        "<annotation>",
        f"  <folder>{escape(folder)}</folder>",
        f"  <filename>{escape(filename)}</filename>",
        "  <source><database>EndoReview</database><frame_index_base>0</frame_index_base></source>",
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for label, (x0, y0, x1, y1), score in boxes:
        xmin, ymin = math.floor(x0) + 1, math.floor(y0) + 1
        xmax, ymax = math.ceil(x1), math.ceil(y1)
        if (xmin - 1, ymin - 1, xmax, ymax) != (x0, y0, x1, y1):
            dropped.add("sub-pixel box precision (VOC stores integer pixels; rounded outward)")
        lines += [
            "  <object>",
            f"    <name>{escape(label)}</name>",
            "    <pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>",
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>",
        ]
        if score is not None:
            lines.append(f"    <score>{score:.6g}</score>")
        lines.append("  </object>")
    lines.append("</annotation>")
    return "\n".join(lines) + "\n", sorted(dropped)


def read_voc_folder(root: str | os.PathLike) -> Collection:
    """A folder of VOC XMLs (``Annotations/<video>/*.xml`` or XMLs directly): one sequence per folder, frames by
    position in natural name order, with the file names kept so that attaching them to a video can use the frame
    numbers in the names (EndoReview's exports declare ``<source><frame_index_base>``)."""
    root = Path(root)
    ann_root = root / "Annotations" if (root / "Annotations").is_dir() else root
    img_root = root / "JPEGImages"
    col = Collection(layout="voc", root=root)
    dirs = [ann_root] + sorted(
        (d for d in ann_root.iterdir() if d.is_dir() and not is_junk(d.name)),
        key=lambda d: natural_key(d.name),
    )
    for d in dirs:
        xmls = sorted((x for x in d.glob("*.xml") if not is_junk(x.name)), key=lambda x: natural_key(x.name))
        if not xmls:
            continue
        name = root.name if d == ann_root else d.name
        item = VideoItem(name=name)
        bases = set()
        for k, x in enumerate(xmls):
            info, objs, issues = read_voc(x)
            col.issues += issues
            bases.add(info["frame_index_base"])
            item.width, item.height = info["width"], info["height"]
            item.boxes += [BoxAnn(k, label, box, prov, None, score) for label, box, prov, score in objs]
        set_frame_names(item, [x.name for x in xmls])
        if len(bases) == 1 and None not in bases:
            item.metadata["frame_name_base"] = bases.pop()
        rel = d.relative_to(ann_root)
        frames = (
            [next(iter(sorted((img_root / rel).glob(x.stem + ".*"))), None) for x in xmls]
            if img_root.is_dir()
            else []
        )
        if frames and all(f is not None for f in frames):
            item.frame_files = frames
            item.num_frames = len(frames)
        col.videos.append(item)
    if not col.videos:
        raise InterchangeError(root, "no Pascal VOC XML files found")
    return col
