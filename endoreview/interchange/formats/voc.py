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

from endoreview.interchange.model import InterchangeError, Issue, Provenance
from endoreview.interchange.util import check_box, parse_float, parse_int, parse_xml


def read_voc(
    path: str | os.PathLike, *, source_name: str | None = None, data: bytes | None = None
) -> tuple[dict, list[tuple[str, tuple[float, float, float, float], Provenance, float | None]], list[Issue]]:
    """Parse one VOC XML. Returns ({'filename', 'width', 'height'}, [(label, bbox, provenance, score)], issues)."""
    src = source_name or str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise InterchangeError(src, f"cannot be read ({e.strerror or e})") from None
    root = parse_xml(data, src)
    if root.tag != "annotation":
        raise InterchangeError(src, f"root element is <{root.tag}>, expected <annotation>", line=root.line)
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
    info = {"filename": root.findtext("filename") or "", "width": width, "height": height}
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
