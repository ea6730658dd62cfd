"""Polyps: sessile (a low dome) and pedunculated (a head on a stalk), fixed to the wall, drawn per frame in a
small patch around their projection. Their colour is the mucosa's, slightly shifted, so mean frame colour does not
give them away; their alpha at 0.5 is the exact ground-truth mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolypSpec:
    track_id: int
    kind: str  # "sessile" | "pedunculated"
    theta: float  # angle around the tube (radians)
    z: float  # world depth of the base
    radius: float  # world units
    aspect: float  # tangential / radial extent of the base
    tint: tuple[float, float, float]  # multiplies the mucosa colour
    texture: np.ndarray  # float32 [32, 32] in [-1, 1]: surface pattern (pits, lobules)
    texture_strength: float
    stalk: float  # stalk length in head radii (pedunculated only)
    lobes: np.ndarray  # float32 [3, 2]: amplitude, phase of boundary harmonics


def make_polyp(rng: np.random.Generator, track_id: int, z: float) -> PolypSpec:
    import cv2

    kind = "pedunculated" if rng.uniform() < 0.4 else "sessile"
    noise = rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    tex = cv2.resize(noise, (32, 32), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(
        rng.uniform(-1, 1, (16, 16)).astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR
    )
    tex = np.clip(0.6 * tex + 0.4 * fine, -1, 1)
    # colour close to the mucosa: a little redder (adenoma, hyperaemic) or paler (hyperplastic)
    style = rng.choice(["redder", "paler", "same"])
    if style == "redder":
        tint = (rng.uniform(1.0, 1.06), rng.uniform(0.88, 0.96), rng.uniform(0.9, 0.98))
    elif style == "paler":
        tint = (rng.uniform(0.97, 1.01), rng.uniform(1.0, 1.05), rng.uniform(1.0, 1.05))
    else:
        tint = tuple(rng.uniform(0.96, 1.04, 3))
    return PolypSpec(
        track_id=track_id,
        kind=kind,
        theta=float(rng.uniform(0, 2 * np.pi)),
        z=float(z),
        radius=float(rng.uniform(0.12, 0.4) if kind == "sessile" else rng.uniform(0.1, 0.25)),
        aspect=float(rng.uniform(0.8, 1.3)),
        tint=tuple(float(t) for t in tint),
        texture=tex,
        texture_strength=float(rng.uniform(0.06, 0.18)),
        stalk=float(rng.uniform(1.2, 2.4)),
        lobes=np.stack([rng.uniform(0.0, 0.12, 3), rng.uniform(0, 2 * np.pi, 3)], 1).astype(np.float32),
    )


def _lobed(d: np.ndarray, ang: np.ndarray, lobes: np.ndarray) -> np.ndarray:
    wobble = np.ones_like(d)
    for k, (amp, ph) in enumerate(lobes, start=2):
        wobble += amp * np.sin(k * ang + ph)
    return d / wobble


def render_polyp(
    p: PolypSpec,
    centre: tuple[float, float],
    inward: tuple[float, float],
    scale: float,
    shape: tuple[int, int],
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Draw polyp ``p`` whose base is at ``centre`` (pixels), ``inward`` a unit vector towards the lumen,
    ``scale`` pixels per world unit at its depth. Returns (y0, y1, x0, x1) of the patch and, over the patch,
    alpha, shading, texture, specular propensity and wall shadow, each [h, w]; None if off-frame."""
    import cv2

    H, W = shape
    r_px = p.radius * scale
    if r_px < 1.0:
        return None
    ix, iy = inward
    if p.kind == "sessile":
        head_r = r_px
        head_off = 0.35 * r_px
    else:
        head_r = r_px
        head_off = p.stalk * r_px
    hx, hy = centre[0] + ix * head_off, centre[1] + iy * head_off
    reach = head_r * (1.7 + float(np.abs(p.lobes[:, 0]).sum())) + 2
    x0 = int(np.floor(min(centre[0], hx) - reach))
    x1 = int(np.ceil(max(centre[0], hx) + reach))
    y0 = int(np.floor(min(centre[1], hy) - reach))
    y1 = int(np.ceil(max(centre[1], hy) + reach))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    xx += 0.5
    yy += 0.5
    # head: an ellipse in (radial, tangential) coordinates with a lobed outline
    dx, dy = xx - hx, yy - hy
    rad = dx * ix + dy * iy
    tan = -dx * iy + dy * ix
    ang = np.arctan2(tan, rad)
    d_head = np.sqrt((rad / (head_r / max(p.aspect, 1.0))) ** 2 + (tan / (head_r * min(p.aspect, 1.0))) ** 2)
    d_head = _lobed(d_head, ang, p.lobes)
    edge = max(head_r * 0.08, 0.6)
    alpha = np.clip((1.0 - d_head) * head_r / edge, 0, 1)
    height = np.sqrt(np.clip(1.0 - d_head**2, 0, 1))
    if p.kind == "pedunculated":
        # stalk: a capsule from the base to the head, narrower, drawn under the head
        sx, sy = xx - centre[0], yy - centre[1]
        t = np.clip((sx * ix + sy * iy) / max(head_off, 1e-3), 0, 1)
        px, py = sx - t * ix * head_off, sy - t * iy * head_off
        stalk_w = 0.38 * head_r
        d_stalk = np.sqrt(px**2 + py**2) / stalk_w
        a_stalk = np.clip((1.0 - d_stalk) * stalk_w / edge, 0, 1)
        h_stalk = 0.55 * np.sqrt(np.clip(1.0 - d_stalk**2, 0, 1))
        use_stalk = a_stalk > alpha
        height = np.where(use_stalk, h_stalk, height)
        alpha = np.maximum(alpha, a_stalk)
    # shading: the light is at the camera, so the dome top is bright and the rim falls off
    # light from the camera: the dome top faces it and is closer (brighter), the rim turns away (darker)
    shade = (0.12 + 0.88 * height**0.7) * (1.0 + 0.1 * height)
    tex = cv2.resize(p.texture, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    spec = np.clip(height - 0.9, 0, None) * 10.0 * (0.2 + 0.8 * (tex > 0.3))
    # a soft contact shadow on the wall around the polyp (outside it), strongest on the side towards the lumen
    d_shadow = np.sqrt((xx - hx - ix * 0.25 * head_r) ** 2 + (yy - hy - iy * 0.25 * head_r) ** 2) / (
        1.35 * head_r
    )
    shadow = np.clip(1.0 - d_shadow, 0, 1) ** 0.5 * (1 - alpha)
    return (y0, y1, x0, x1), alpha, shade, tex, spec, shadow
