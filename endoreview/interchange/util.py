"""Small shared helpers: natural sort, safe paths, frame numbers, a line-numbered XML parser, box checks."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.parsers import expat

import numpy as np

from endoreview.interchange.model import InterchangeError, Issue, Provenance
from endoreview.interchange.raster import IMAGE_EXTS

_NUM = re.compile(r"(\d+)")
_TRAILING_NUM = re.compile(r"(\d+)(?!.*\d)")


def natural_key(s: str | os.PathLike) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in _NUM.split(str(s))]


def is_junk(name: str) -> bool:
    """macOS/Windows debris that ships inside real dataset archives."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    base = parts[-1] if parts else name
    return (
        "__MACOSX" in parts
        or base.startswith("._")
        or base in (".DS_Store", "Thumbs.db", "desktop.ini")
        or base.startswith(".")
    )


def list_images(folder: Path) -> list[Path]:
    """Images directly inside ``folder`` in natural order, skipping hidden and macOS debris files."""
    if not folder.is_dir():
        return []
    out = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not is_junk(p.name)
    ]
    return sorted(out, key=lambda p: natural_key(p.name))


def frame_number(name: str) -> int | None:
    """The last run of digits in a file stem (``img_00012`` -> 12, ``case1_7-3`` -> 3), or None."""
    m = _TRAILING_NUM.search(Path(name).stem)
    return int(m.group(1)) if m else None


def safe_join(
    root: Path, rel: str, file: str | os.PathLike, *, line: int | None = None, field: str | None = None
):
    """Resolve ``rel`` under ``root``; a path that escapes the dataset folder is malformed input."""
    rel_norm = rel.replace("\\", "/").strip()
    if not rel_norm:
        raise InterchangeError(file, "empty path", line=line, field=field)
    p = Path(rel_norm)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", rel_norm):
        raise InterchangeError(
            file, f"absolute path {rel!r} is not allowed in a dataset file", line=line, field=field
        )
    root_r = root.resolve()
    full = (root_r / p).resolve()
    if full != root_r and root_r not in full.parents:
        raise InterchangeError(
            file, f"path {rel!r} escapes the dataset folder {root}", line=line, field=field
        )
    return full


def parse_int(text: str, file, *, line=None, field=None, what="integer") -> int:
    try:
        v = int(str(text).strip())
    except (TypeError, ValueError):
        try:
            f = float(str(text).strip())
        except (TypeError, ValueError):
            raise InterchangeError(file, f"{what} expected, got {text!r}", line=line, field=field) from None
        if not math.isfinite(f) or f != int(f):
            raise InterchangeError(file, f"{what} expected, got {text!r}", line=line, field=field) from None
        v = int(f)
    return v


def parse_float(text, file, *, line=None, field=None) -> float:
    try:
        v = float(str(text).strip())
    except (TypeError, ValueError):
        raise InterchangeError(file, f"number expected, got {text!r}", line=line, field=field) from None
    if not math.isfinite(v):
        raise InterchangeError(file, f"finite number expected, got {text!r}", line=line, field=field)
    return v


# ----------------------------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------------------------
_P10 = 10 ** np.arange(19, dtype=np.int64)


def join_ints(v: np.ndarray, sep: str = ", ") -> str:
    """``sep.join(str(x) for x in v)`` of integers, built with array operations (a mask's thousands of run lengths
    in about half the time of one ``%`` format): each number's digits right-aligned in a row of bytes with the
    separator after them, leading zeros as NUL bytes that are then dropped."""
    n = v.size
    if n == 0:
        return ""
    if int(v.min()) < 0:
        return sep.join(map(str, v.tolist()))
    top = int(v.max())
    nd = len(str(top))
    d = v.astype(np.int32 if top < 2**31 else np.int64)
    rows = np.empty((n, nd + len(sep)), np.uint8)
    for i, c in enumerate(sep.encode("ascii")):
        rows[:, nd + i] = c
    for k in range(nd - 1, -1, -1):
        q = d // 10
        np.subtract(d, q * 10, out=d)
        d += 48
        if k < nd - 1:
            d *= v >= _P10[nd - 1 - k]  # a leading zero becomes NUL
        rows[:, k] = d
        d = q
    return rows.tobytes().replace(b"\0", b"")[: -len(sep) or None].decode("ascii")


# ----------------------------------------------------------------------------------------------------------------
# Boxes
# ----------------------------------------------------------------------------------------------------------------
def box_tolerance(size: int) -> float:
    return max(2.0, 0.01 * size)


def check_box(
    bbox: tuple[float, float, float, float],
    width: int | None,
    height: int | None,
    prov: Provenance,
    issues: list[Issue],
) -> tuple[float, float, float, float]:
    """Apply the box rule: clip overhangs within tolerance (warning), reject boxes outside the image or without area,
    widen degenerate boxes at the image edge to 1 px (warning)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InterchangeError.at(prov, f"box {list(bbox)} has non-finite coordinates")
    if x1 < x0 or y1 < y0:
        raise InterchangeError.at(prov, f"box {list(bbox)} has negative width or height")
    if width is not None and height is not None:
        tx, ty = box_tolerance(width), box_tolerance(height)
        if x0 < -tx or y0 < -ty or x1 > width + tx or y1 > height + ty:
            raise InterchangeError.at(prov, f"box {[x0, y0, x1, y1]} lies outside the {width}x{height} image")
        c = (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
        if c != (x0, y0, x1, y1):
            issues.append(Issue.at(prov, f"box {[x0, y0, x1, y1]} clipped to the image"))
        x0, y0, x1, y1 = c
        if x1 - x0 < 1 or y1 - y0 < 1:
            nx0 = min(x0, float(width) - 1) if x1 - x0 < 1 else x0
            ny0 = min(y0, float(height) - 1) if y1 - y0 < 1 else y0
            nb = (nx0, ny0, max(x1, nx0 + 1), max(y1, ny0 + 1))
            issues.append(Issue.at(prov, f"degenerate box {[x0, y0, x1, y1]} widened to 1 px"))
            x0, y0, x1, y1 = nb
    elif x1 - x0 <= 0 or y1 - y0 <= 0:
        raise InterchangeError.at(prov, f"box {list(bbox)} has no area")
    return (x0, y0, x1, y1)


# ----------------------------------------------------------------------------------------------------------------
# XML with line numbers (expat; entity declarations refused)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class XNode:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[XNode] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> XNode | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[XNode]:
        return [c for c in self.children if c.tag == tag]

    def findtext(self, tag: str, default: str | None = None) -> str | None:
        c = self.find(tag)
        return c.text.strip() if c is not None else default

    def path(self, *tags: str) -> XNode | None:
        node: XNode | None = self
        for t in tags:
            node = node.find(t) if node is not None else None
        return node


def parse_xml(data: bytes, file: str | os.PathLike) -> XNode:
    parser = expat.ParserCreate()
    stack: list[XNode] = []
    root: list[XNode] = []

    def start(tag, attrs):
        node = XNode(tag, dict(attrs), parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(tag):
        stack.pop()

    def chars(text):
        if stack:
            stack[-1].text += text

    def no_entities(*args):
        raise InterchangeError(file, "XML entity declarations are not allowed", line=parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = no_entities
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise InterchangeError(
            file, f"XML does not parse ({expat.ErrorString(e.code)})", line=e.lineno
        ) from None
    except (LookupError, ValueError) as e:  # e.g. an unknown encoding in the XML declaration
        raise InterchangeError(file, f"XML does not parse ({e})", line=parser.CurrentLineNumber) from None
    if not root:
        raise InterchangeError(file, "XML has no root element")
    return root[0]


# ----------------------------------------------------------------------------------------------------------------
# Frames given by position vs by the number in the file name
# ----------------------------------------------------------------------------------------------------------------
def set_frame_names(item, names: list[str]) -> None:
    """Record that ``item``'s annotation frames are positions in ``names`` (file names), not frame numbers yet."""
    item.metadata["frame_names"] = list(names)


def read_xml(
    path: str | os.PathLike, root_tag: str, source_name: str | None = None, data: bytes | None = None
) -> tuple[str, XNode]:
    """``(name, root)`` of the XML file ``path`` (or its bytes ``data``), named ``source_name`` in errors, whose
    root element must be ``<root_tag>``."""
    src = source_name or str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise InterchangeError(src, f"cannot be read ({e.strerror or e})") from None
    root = parse_xml(data, src)
    if root.tag != root_tag:
        raise InterchangeError(src, f"root element is <{root.tag}>, expected <{root_tag}>", line=root.line)
    return src, root


def remap_frames_by_name(item, base: int, src: str) -> None:
    """Turn position-indexed frames into the number in each frame's file name minus ``base`` (0 or 1)."""
    names = item.metadata.pop("frame_names", None)
    if names is None:
        return
    numbers = []
    for n in names:
        k = frame_number(n)
        if k is None:
            raise InterchangeError(src, f"file name {n!r} carries no frame number")
        if k - base < 0:
            raise InterchangeError(src, f"file name {n!r} gives frame {k - base} with {base}-based numbering")
        numbers.append(k - base)
    for a in (*item.masks, *item.boxes):
        a.frame = numbers[a.frame]
    item.frame_files = None
    item.num_frames = None
