"""Overlay colours that stay readable on red-pink mucosa (Qt-free, so it can be tested without a display).

Every overlay stroke is drawn twice: a dark halo under a bright class-coloured core. Light pink mucosa is covered by
the halo, dark red mucosa by the core; :func:`stroke_contrast` is the better of the two, and the palette is chosen so
it is at least 3:1 (WCAG 2 contrast ratio for graphical objects) against every colour in :data:`MUCOSA_SAMPLES`.
Label text sits on an opaque chip (:data:`CHIP`) with at least 4.5:1 contrast.
"""

from __future__ import annotations

import hashlib

RGB = tuple[int, int, int]

# Typical colours of colon/stomach mucosa under white light: dark red folds to pale pink highlights.
MUCOSA_SAMPLES: tuple[RGB, ...] = (
    (120, 35, 35),
    (150, 50, 50),
    (175, 70, 65),
    (200, 90, 90),
    (215, 110, 100),
    (230, 130, 130),
    (235, 150, 140),
    (240, 170, 160),
    (190, 120, 90),  # bile-tinged
    (250, 200, 190),  # pale, near specular
)

HALO: RGB = (10, 10, 20)
CHIP: RGB = (20, 20, 28)
CHIP_TEXT: RGB = (255, 255, 255)

# Bright, mutually distinct colours; none of them a red/pink (the mucosa's own hue).
CLASS_COLOURS: tuple[RGB, ...] = (
    (255, 235, 59),  # yellow
    (0, 229, 255),  # cyan
    (118, 255, 3),  # lime
    (255, 255, 255),  # white
    (255, 200, 100),  # light amber
    (124, 255, 218),  # aquamarine
    (220, 200, 255),  # lavender
    (179, 229, 252),  # pale blue
)

# Label-segment states on the timeline (on the dark timeline background, not on mucosa).
STATE_COLOURS: dict[str, RGB] = {
    "suggested": (158, 158, 158),
    "accepted": (102, 187, 106),
    "edited": (66, 165, 245),
    "rejected": (239, 83, 80),
    "manual": (255, 202, 40),
}


def _channel(c: float) -> float:
    c = c / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: RGB) -> float:
    r, g, b = (_channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def stroke_contrast(core: RGB, background: RGB) -> float:
    """Contrast of a halo+core stroke against a background: the better of its two tones."""
    return max(contrast_ratio(core, background), contrast_ratio(HALO, background))


_assigned: dict[str, RGB] = {}


def colour_for(name: str, known: tuple[str, ...] = ()) -> RGB:
    """A stable colour for a class name: by position in ``known`` if listed, else by a hash of the name."""
    if name in known:
        return CLASS_COLOURS[known.index(name) % len(CLASS_COLOURS)]
    if name not in _assigned:
        h = int(hashlib.md5(name.encode("utf-8")).hexdigest(), 16)
        _assigned[name] = CLASS_COLOURS[h % len(CLASS_COLOURS)]
    return _assigned[name]


def hex_colour(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
