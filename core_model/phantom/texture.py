"""The colon wall as a texture in tube coordinates: column = angle around the tube, row = depth along it.

One texture per video holds the shaded albedo (mucosa colour, mottling, vessels, haustral folds, fluid, bubbles)
and a specular propensity map (wet fold crests, fluid, bubble rims). Frames sample it with ``cv2.remap``, so the
wall moves correctly with the camera for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core_model.phantom.sites import SiteStyle

BASE_COLS = 512  # samples around the tube (2*pi) for 256-pixel frames; scaled with the frame size


def texture_cols(size: int) -> int:
    """Texture width for frames of ``size`` pixels: about two samples per pixel of field-of-view radius * 2pi."""
    return int(np.clip(round(2 * size / 8) * 8, 128, 1024))


@dataclass
class WallTexture:
    albedo: np.ndarray  # float32 [rows, COLS, 3], shading baked in, linear RGB in ~[0, 1.3]
    specular: np.ndarray  # float32 [rows, COLS], propensity for a specular highlight in [0, 1]
    z0: float  # world depth of row 0
    base_colour: np.ndarray  # float32 [3], mean mucosa albedo (polyps take their colour from it)

    @property
    def rows(self) -> int:
        return self.albedo.shape[0]

    @property
    def cols(self) -> int:
        return self.albedo.shape[1]

    @property
    def rows_per_unit(self) -> float:
        return rows_per_unit(self.cols)


def rows_per_unit(cols: int) -> float:
    """Rows per world unit of depth that make texels square on a unit-radius tube."""
    return cols / (2 * np.pi)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Band-limited noise in [-1, 1]: random values on a coarse grid, bicubic-upsampled (wraps in columns)."""
    import cv2

    ch, cw = max(cells[0], 2), max(cells[1], 2)
    coarse = rng.uniform(-1, 1, size=(ch, cw + 3)).astype(np.float32)
    coarse[:, -3:] = coarse[:, :3]  # periodic around the tube
    up = cv2.resize(coarse, (int(shape[1] * (cw + 3) / cw), shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(up[:, : shape[1]], -1.0, 1.0)


def _vessels(rng: np.random.Generator, rows: int, cols: int, density: float) -> np.ndarray:
    """Branching, tortuous dark-red vessel map in [0, 1] (random walks with thinning branches)."""
    import cv2

    res = cols / BASE_COLS
    canvas = np.zeros((rows, cols), np.float32)
    n_trees = int(rows * cols / (4000 * res * res) * density)
    for _ in range(n_trees):
        stack = [(rng.uniform(0, cols), rng.uniform(0, rows), rng.uniform(0, 2 * np.pi), 2.2, 0)]
        while stack:
            x, y, a, w, depth = stack.pop()
            n = int(rng.integers(6, 16))
            steps = rng.normal(0, 0.35, n).cumsum() + a
            lengths = rng.uniform(3, 7, n) * res
            xs = x + np.concatenate([[0], np.cos(steps) * lengths]).cumsum()
            ys = y + np.concatenate([[0], np.sin(steps) * lengths]).cumsum()
            pts = np.stack([xs, ys], 1).round().astype(np.int32)
            strength = 0.35 + 0.65 * (w / 2.2)
            cv2.polylines(
                canvas,
                [pts],
                False,
                float(strength),
                thickness=max(1, int(round(w * res))),
                lineType=cv2.LINE_AA,
            )
            if depth < 3 and w > 0.7:
                for _ in range(int(rng.integers(1, 3))):
                    k = int(rng.integers(1, n))
                    stack.append(
                        (
                            xs[k],
                            ys[k],
                            steps[k - 1] + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2),
                            w * 0.6,
                            depth + 1,
                        )
                    )
    return cv2.GaussianBlur(canvas, (3, 3), 0.7)


def _folds(rng: np.random.Generator, rows: int, cols: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Haustral folds: crescent ridges between three taeniae. Returns (height, d height / d depth)."""
    rpu = rows_per_unit(cols)
    u = np.linspace(0, 2 * np.pi, cols, endpoint=False, dtype=np.float32)[None, :]
    v = (np.arange(rows, dtype=np.float32) / rpu)[:, None]
    height = np.zeros((rows, cols), np.float32)
    z = rng.uniform(0, spacing)
    total = rows / rpu
    phase = rng.uniform(0, 2 * np.pi)
    while z < total + spacing:
        width = spacing * rng.uniform(0.10, 0.16)
        wobble = 0.18 * spacing * np.sin(3 * u + rng.uniform(0, 2 * np.pi)) + 0.06 * np.sin(
            7 * u + rng.uniform(0, 6)
        )
        crescent = np.clip(0.25 + 0.75 * np.cos(3 * (u - phase) + rng.normal(0, 0.3)), 0, 1) ** 0.7
        ridge = np.exp(-(((v - z - wobble) / width) ** 2)) * crescent * rng.uniform(0.6, 1.0)
        height = np.maximum(height, ridge)
        z += spacing * rng.uniform(0.75, 1.25)
        phase += rng.normal(np.pi / 3, 0.3)  # haustra alternate between taeniae
    dh = np.gradient(height, axis=0) * rpu * spacing * 0.25
    return height, dh


def make_wall(
    rng: np.random.Generator, site: SiteStyle, z_min: float, z_max: float, cols: int = BASE_COLS
) -> WallTexture:
    """Texture covering world depths [z_min, z_max], ``cols`` samples around the tube."""
    import cv2

    COLS = cols
    rows = int(np.ceil((z_max - z_min) * rows_per_unit(cols))) + 2
    # mucosa: pink-red with per-video variation, the site's white balance on top
    base = np.array([0.88, 0.33, 0.24], np.float32) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    base *= np.asarray(site.colour_gain, np.float32)
    ms = site.mottle_scale
    mottle = smooth_noise(rng, (rows, COLS), (int(rows / (10 * ms)), int(COLS / (10 * ms))))
    fine = smooth_noise(rng, (rows, COLS), (rows // 3, COLS // 3))
    albedo = np.empty((rows, COLS, 3), np.float32)
    albedo[:] = base
    albedo *= (1 + 0.10 * mottle + 0.04 * fine)[..., None]
    # slightly redder, darker patches (inflamed / thinner mucosa)
    albedo[..., 1:] *= (1 - 0.08 * np.clip(mottle, 0, 1))[..., None]
    vessels = _vessels(rng, rows, cols, site.vessel_density) * (0.55 * site.vessel_contrast)
    vessel_colour = base * np.array([0.62, 0.35, 0.45], np.float32)
    albedo += (vessel_colour - albedo) * vessels[..., None]
    height, dh = _folds(rng, rows, cols, site.fold_spacing)
    # camera-side light: near faces of folds bright, far faces in shadow, crests closer and brighter
    shade = np.clip(1.0 + 0.45 * dh + 0.2 * height, 0.5, 1.45)
    shadow = np.clip(-dh, 0, None)
    shade *= 1.0 - 0.25 * np.clip(shadow * 1.5, 0, 1)
    spec = np.clip(dh, 0, None) * (0.6 + 0.4 * height)
    spec *= 0.5 + 0.5 * (fine > 0.1)
    spec += 0.25 * np.clip(smooth_noise(rng, (rows, COLS), (rows // 2, COLS // 2)), 0, 1) ** 3
    if rng.uniform() < site.fluid_prob:
        _add_fluid_and_bubbles(rng, albedo, spec, base)
    albedo *= shade[..., None]
    spec = cv2.GaussianBlur(spec.astype(np.float32), (3, 3), 0)
    spec /= max(float(spec.max()), 1e-6)
    return WallTexture(albedo=albedo, specular=spec, z0=z_min, base_colour=base)


def _add_fluid_and_bubbles(
    rng: np.random.Generator, albedo: np.ndarray, spec: np.ndarray, base: np.ndarray
) -> None:
    """A pool of yellowish fluid on the dependent wall and a cluster of bubbles (in place)."""
    import cv2

    rows, COLS = albedo.shape[:2]
    rpu = rows_per_unit(COLS)
    res = COLS / BASE_COLS
    cu = rng.uniform(0, COLS)
    cv = rng.uniform(0.2, 0.8) * rows
    pool = np.zeros((rows, COLS), np.float32)
    axes = (int(rng.uniform(0.06, 0.14) * COLS), int(rng.uniform(0.5, 1.5) * rpu))
    cv2.ellipse(pool, (int(cu), int(cv)), axes, 0, 0, 360, 1.0, -1)
    pool = cv2.GaussianBlur(pool, (0, 0), 4 * res)
    fluid = np.array([0.80, 0.62, 0.28], np.float32) * rng.uniform(0.85, 1.1)
    albedo += (fluid - albedo) * (0.75 * pool)[..., None]
    speckle = rng.uniform(0, 1, (rows, COLS)).astype(np.float32) > 0.97
    spec += 0.6 * pool * cv2.GaussianBlur(speckle.astype(np.float32), (3, 3), 0)
    rim = np.zeros((rows, COLS), np.float32)
    fill = np.zeros((rows, COLS), np.float32)
    for _ in range(int(rng.integers(8, 30))):
        r = rng.uniform(1.5, 5.0) * res
        x = int(cu + rng.normal(0, axes[0] * 0.6))
        y = int(cv + rng.normal(0, axes[1] * 0.6))
        ax = (max(1, int(r * 2.2)), max(1, int(r)))
        cv2.ellipse(fill, (x % COLS, y), ax, 0, 0, 360, 1.0, -1)
        cv2.ellipse(rim, (x % COLS, y), ax, 0, 0, 360, 1.0, 1, cv2.LINE_AA)
        cv2.circle(spec, (x % COLS + ax[0] // 3, y - ax[1] // 2), 0, 1.0, -1)
    albedo += (np.array([0.95, 0.9, 0.8], np.float32) - albedo) * (0.25 * fill + 0.55 * rim)[..., None]
    spec += 0.6 * rim
