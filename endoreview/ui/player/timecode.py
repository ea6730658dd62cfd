"""The player's times as a reviewer reads and types them (the transport's counter, go-to, the library's lengths);
Qt-free and pyqtgraph-free, so the library can show lengths before the player page exists."""

from __future__ import annotations

import re

__all__ = ["counter_text", "format_time", "parse_time"]


def format_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:06.3f}" if h >= 1 else f"{int(m):02d}:{s:06.3f}"


def counter_text(t: float, duration: float, frame: int, frames: int) -> str:
    """The transport's counter: the time to the millisecond, the length to the second, the frame (1-based)."""
    return f"{format_time(t)} / {format_time(duration).split('.')[0]}   frame {frame} / {frames}"


def parse_time(text: str, fps: float) -> int | None:
    """``"#120"`` or ``"f120"`` is frame 120 as the counter shows it (1-based); ``"1:02:03.5"``, ``"2:03"`` or
    ``"75.2"`` a time. Returns a 0-based frame index."""
    t = text.strip().lower()
    if not t:
        return None
    m = re.fullmatch(r"[#f]\s*(\d+)", t)
    if m:
        return max(0, int(m.group(1)) - 1)
    parts = t.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if len(values) > 3 or any(v < 0 for v in values):
        return None
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return int(round(seconds * fps))
