"""Resource caps for untrusted import input: a file of a few hundred bytes must not be able to exhaust the machine.

Each cap is checked *before* the memory or disk it protects is spent, and a breach is an
:class:`~endoreview.interchange.model.InterchangeError` naming the file, the field and the limit, so that a batch
import reports that one file and goes on with the rest. The values are module constants (tests and unusual sites may
raise them); they are generous for real endoscopy data (full-HD and 4K frames, archives of tens of GB).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from endoreview.interchange.model import InterchangeError

#: Most pixels one annotation image, mask or declared frame may have (8K UHD is 33 Mpx).
MAX_IMAGE_PIXELS = 40_000_000
#: Longest side of a declared frame or image.
MAX_SIDE = 16_384
#: Most frames a declared track / sequence may expand to when no video length bounds it (4.6 h at 30 fps).
MAX_FRAMES = 500_000
#: Most annotations one file may expand to (CVAT tracks persist over frames).
MAX_EXPANDED = 2_000_000
#: Most bytes a zip archive may expand to, and its largest overall expansion ratio (uncompressed / compressed).
MAX_ZIP_BYTES = 64 << 30
MAX_ZIP_RATIO = 100.0
#: A zip expanding to less than this is never refused for its ratio (small text-heavy archives compress well).
ZIP_RATIO_FLOOR = 64 << 20
#: Free space kept on the disk after an extraction.
FREE_SPACE_MARGIN = 256 << 20


def check_image_size(
    file: str | os.PathLike, width: object, height: object, *, field: str | None = None
) -> tuple[int, int]:
    """A declared ``width`` x ``height`` -> ints, or an error when not finite positive integers within the caps."""
    try:
        w, h = float(width), float(height)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InterchangeError(file, f"size {width!r}x{height!r} is not a number", field=field) from None
    if not (math.isfinite(w) and math.isfinite(h)) or w != int(w) or h != int(h) or w < 1 or h < 1:
        raise InterchangeError(file, f"size {width!r}x{height!r} is not a positive whole number", field=field)
    w, h = int(w), int(h)
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_IMAGE_PIXELS:
        raise InterchangeError(
            file,
            f"declared size {w}x{h} exceeds the import limit ({MAX_SIDE} pixels a side, "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels)",
            field=field,
        )
    return w, h


def check_frame_count(
    file: str | os.PathLike, n: int, *, limit: int | None = None, field: str | None = None
) -> int:
    """A declared number of frames, bounded by ``limit`` (the target video's length) or :data:`MAX_FRAMES`."""
    cap = MAX_FRAMES if limit is None else min(int(limit), MAX_FRAMES)
    if n > cap:
        what = f"the video's {cap} frames" if limit is not None else f"the import limit of {cap} frames"
        raise InterchangeError(file, f"declares {n} frames, more than {what}", field=field)
    return n


def check_zip(file: str | os.PathLike, total: int, compressed: int, dest_dir: str | os.PathLike) -> None:
    """Refuse an archive whose declared expansion is too large, too compressed, or does not fit on the disk."""
    if total > MAX_ZIP_BYTES:
        raise InterchangeError(
            file,
            f"expands to {total / 2**30:.1f} GiB, more than the import limit of {MAX_ZIP_BYTES / 2**30:.0f} GiB",
        )
    ratio = total / max(compressed, 1)
    if total > ZIP_RATIO_FLOOR and ratio > MAX_ZIP_RATIO:
        raise InterchangeError(
            file,
            f"expands {ratio:.0f}-fold ({total / 2**20:.0f} MiB from {compressed / 2**20:.1f} MiB), "
            f"more than the {MAX_ZIP_RATIO:.0f}-fold limit: refused as a likely zip bomb",
        )
    d = Path(dest_dir)
    while not d.exists() and d != d.parent:
        d = d.parent
    free = shutil.disk_usage(d).free
    if total + FREE_SPACE_MARGIN > free:
        raise InterchangeError(
            file, f"needs {total / 2**20:.0f} MiB to extract but only {free / 2**20:.0f} MiB are free in {d}"
        )


def check_polygon(
    file: str | os.PathLike,
    pts: list[float],
    width: int,
    height: int,
    *,
    line: int | None = None,
    field: str | None = None,
) -> list[float]:
    """A flat ``[x0, y0, x1, y1, ...]`` polygon -> floats, refused unless every point is finite and inside the
    ``width`` x ``height`` image (one pixel of slack for pixel-corner coordinates)."""
    out = []
    for k in range(0, len(pts) - 1, 2):
        x, y = float(pts[k]), float(pts[k + 1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InterchangeError(
                file, f"polygon point ({pts[k]}, {pts[k + 1]}) is not finite", line=line, field=field
            )
        if not (-1.0 <= x <= width + 1.0 and -1.0 <= y <= height + 1.0):
            raise InterchangeError(
                file,
                f"polygon point ({x:g}, {y:g}) lies outside the {width}x{height} image",
                line=line,
                field=field,
            )
        out += [min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))]
    return out
