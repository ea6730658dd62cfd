"""Procedural colonoscopy video: a camera moving through a haustrated tube lit from the camera.

Geometry: a tube of radius R(theta) seen from near its axis. A pixel at distance rho from the vanishing point (the
lumen centre) sees the wall at depth z = f * R(theta) / rho, so the lumen is far and dark and the periphery near
and bright. The wall is one texture in (angle, depth) coordinates sampled with cv2.remap; polyps are drawn in small
patches at their projected position, so everything moves with the camera. Each frame: wall -> polyps -> light
fall-off and vignetting -> motion blur -> tone curve -> specular highlights -> optics softness and sensor noise ->
field-of-view mask -> burned-in overlay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from core_model.phantom.groundtruth import PhantomGroundTruth, Track
from core_model.phantom.polyps import PolypSpec, make_polyp, render_polyp
from core_model.phantom.sites import SiteStyle, get_site
from core_model.phantom.texture import make_wall, texture_cols

log = logging.getLogger(__name__)

Z_FAR = 6.0  # deeper than this the wall is black anyway (light < 1 %)
LIGHT_Z = 0.75  # depth at which the endoscope light has fallen to half
MIN_AREA_FRACTION = 1e-3  # a polyp showing fewer pixels than this (of the frame) is not drawn nor labelled
MIN_POLYP_LIGHT = 0.12  # nor one so deep in the lumen that it is too dark to see
NORMAL_VIDEO_PROB = 0.35
LUT_SIZE = 4096  # videos without any polyp
POLYP_SCALE_RANGE = (0.25, 4.0)  # accepted polyp_scale values (inclusive)


@dataclass(frozen=True)
class FieldOfView:
    mask: np.ndarray  # bool [H, W]
    centre: tuple[float, float]
    radius: float
    vignette: np.ndarray  # float32 [H, W] in (0, 1]


def field_of_view(site: SiteStyle, size: int) -> FieldOfView:
    """The site's round or octagonal field of view and its vignetting."""
    import cv2

    cx, cy = site.fov_center[0] * size, site.fov_center[1] * size
    r = site.fov_radius * size
    mask = np.zeros((size, size), np.uint8)
    if site.fov_shape == "round":
        cv2.circle(mask, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), 1, -1, cv2.LINE_8, 4)
    elif site.fov_shape == "octagon":
        ang = np.deg2rad(22.5 + 45 * np.arange(8))
        rv = r / np.cos(np.deg2rad(22.5))  # flat sides at distance r from the centre
        pts = np.stack([cx + rv * np.cos(ang), cy + rv * np.sin(ang)], 1)
        cv2.fillConvexPoly(mask, np.round(pts * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    else:
        raise ValueError(f"unknown field-of-view shape {site.fov_shape!r}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.sqrt((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) / r
    vignette = (1.0 - site.vignette * np.clip(d, 0, 1.2) ** 2.2).astype(np.float32)
    return FieldOfView(mask=mask.astype(bool), centre=(cx, cy), radius=r, vignette=np.clip(vignette, 0.05, 1))


def _wander(rng: np.random.Generator, t: np.ndarray, n_frames: int, terms: int = 3) -> np.ndarray:
    """Smooth random signal in about [-1, 1] over frames ``t``."""
    out = np.zeros(len(t), np.float64)
    for k in range(terms):
        freq = rng.uniform(0.3, 1.5) * (k + 1) / max(n_frames, 1) * 2
        out += rng.uniform(0.3, 1.0) / (k + 1) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out / 1.4


@dataclass
class CameraPath:
    z: np.ndarray  # [T] world depth of the camera
    vp: np.ndarray  # [T, 2] vanishing point in pixels
    roll: np.ndarray  # [T] radians
    shake: np.ndarray  # [T, 2] extra image motion (pixels) that blurs but does not move the scene


def _camera(rng: np.random.Generator, n: int, fov: FieldOfView) -> CameraPath:
    t = np.arange(n, dtype=np.float64)
    direction = -1.0 if rng.uniform() < 0.7 else 1.0  # mostly withdrawal, as in an inspection
    speed = rng.uniform(0.015, 0.05)
    vel = direction * speed * np.clip(1.0 + 0.8 * _wander(rng, t, n), 0.05, None)
    z = np.concatenate([[0.0], np.cumsum(vel)[:-1]])
    amp = rng.uniform(0.1, 0.55)
    vp = np.stack([_wander(rng, t, n), _wander(rng, t, n)], 1) * amp * fov.radius
    vp += np.asarray(fov.centre) + rng.uniform(-0.25, 0.25, 2) * fov.radius
    roll = rng.uniform(0, 2 * np.pi) + 0.5 * _wander(rng, t, n)
    shake = rng.normal(0, 1.0, (n, 2)) * (rng.uniform() < 0.5) * fov.radius / 60
    return CameraPath(z=z, vp=vp, roll=roll, shake=shake)


def _motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    import cv2

    length = float(np.hypot(dx, dy))
    if length < 1.5:
        return None
    k = int(min(np.ceil(length), 11)) | 1
    kern = np.zeros((k, k), np.float32)
    c = k // 2
    ux, uy = dx / length, dy / length
    half = min(length, k) / 2
    cv2.line(
        kern,
        (int(round(c - ux * half)), int(round(c - uy * half))),
        (int(round(c + ux * half)), int(round(c + uy * half))),
        1.0,
        1,
        cv2.LINE_AA,
    )
    return kern / kern.sum()


class _Overlay:
    """The burned-in text of the video processor, drawn in the black border."""

    def __init__(self, site: SiteStyle, size: int, seed: int, rng: np.random.Generator):
        self.site = site
        self.size = size
        self.scale = site.overlay_scale * size / 256
        self.th = 1
        self.line = max(int(round(11 * size / 256)), 6)
        self.patient = f"ID {int(rng.integers(10000, 99999))}"
        self.start_s = int(rng.integers(8 * 3600, 17 * 3600))
        self.date = f"{int(rng.integers(1, 28)):02d}/{int(rng.integers(1, 12)):02d}/2026"
        self._cache: dict[str, np.ndarray] = {}

    def _lines(self, seconds: float) -> list[tuple[str, int, int]]:
        s = self.start_s + int(seconds)
        clock = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        m, L = int(0.02 * self.size) + 2, self.line
        if self.site.overlay == "left":
            return [
                (self.patient, m, m + L),
                (self.date, m, m + 2 * L),
                (clock, m, m + 3 * L),
                ("Eh:A5 Ce:3", m, self.size - m - L),
                (self.site.scope_name.split()[-1], m, self.size - m),
            ]
        w = self.size
        return [
            (self.site.scope_name, m, m + L),
            (self.patient, m, m + 2 * L),
            (self.date, w - m - int(6.2 * L), w - m - L),
            (clock, w - m - int(6.2 * L), w - m),
        ]

    def draw(self, frame: np.ndarray, seconds: float) -> None:
        import cv2

        key = str(int(seconds))
        if key not in self._cache:
            layer = np.zeros((self.size, self.size, 3), np.uint8)
            for text, x, y in self._lines(seconds):
                cv2.putText(
                    layer,
                    text,
                    (x, y),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    self.scale,
                    self.site.overlay_colour,
                    self.th,
                    cv2.LINE_AA,
                )
            self._cache = {key: layer}
        np.maximum(frame, self._cache[key], out=frame)


class PhantomStream:
    """The frames of a phantom video, rendered one at a time (memory stays at one frame plus the uint8 masks);
    ``ground_truth`` is set once iteration has finished. ``render_video`` collects it into an array."""

    def __init__(
        self,
        seed: int,
        n_frames: int = 64,
        size: int = 256,
        site: str | SiteStyle = "default",
        fps: float = 30.0,
        polyp_scale: float = 1.0,
    ):
        if n_frames < 1:
            raise ValueError(f"n_frames must be at least 1, not {n_frames}")
        if size < 32 or size % 2:
            raise ValueError(f"size must be an even number of pixels >= 32, not {size}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        low, high = POLYP_SCALE_RANGE
        if not low <= polyp_scale <= high:
            raise ValueError(f"polyp_scale must be between {low:g} and {high:g}, not {polyp_scale}")
        self.polyp_scale = float(polyp_scale)
        self.seed, self.n_frames, self.size, self.style, self.fps = (
            int(seed),
            int(n_frames),
            int(size),
            get_site(site),
            float(fps),
        )
        self.ground_truth: PhantomGroundTruth | None = None

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return _render(self)


def render_video(
    seed: int,
    n_frames: int = 64,
    size: int = 256,
    site: str | SiteStyle = "default",
    fps: float = 30.0,
    polyp_scale: float = 1.0,
) -> tuple[np.ndarray, PhantomGroundTruth]:
    """Render a phantom colonoscopy video: (frames uint8 [T, H, W, 3] RGB, exact ground truth). Deterministic by
    ``seed``; about a third of the seeds give a video with no polyp. ``polyp_scale`` multiplies every polyp's size
    (the scene is otherwise the same): 1 gives small polyps (median about 1 % of the frame), 2.5 sizes like the
    public polyp datasets (median about 5 %)."""
    stream = PhantomStream(seed, n_frames, size, site, fps, polyp_scale)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for t, frame in enumerate(stream):
        frames[t] = frame
    assert stream.ground_truth is not None
    return frames, stream.ground_truth


def _render(stream: PhantomStream) -> Iterator[np.ndarray]:
    import cv2

    seed, n_frames, size, style, fps = stream.seed, stream.n_frames, stream.size, stream.style, stream.fps
    # independent streams, so that the same seed gives the same scene (path, polyps, sites' text) at any size
    rng_cam, rng_wall, rng_polyp, rng_misc = (np.random.default_rng([seed, k]) for k in range(4))
    T, H, W = n_frames, size, size
    fov = field_of_view(style, size)
    cam = _camera(rng_cam, T, fov)
    fpx = 0.42 * fov.radius  # pixels per unit of (R / z)
    shape_phase = [float(v) for v in rng_cam.uniform(0, 2 * np.pi, 2)]
    wall = make_wall(
        rng_wall, style, float(cam.z.min()) - 0.5, float(cam.z.max()) + Z_FAR + 0.5, texture_cols(size)
    )

    def tube_radius(theta):
        return 1.0 + 0.14 * np.sin(3 * theta + shape_phase[0]) + 0.05 * np.sin(5 * theta + shape_phase[1])

    # polyps: each is placed so that the camera passes it during the video
    polyps: list[PolypSpec] = []
    if rng_polyp.uniform() >= NORMAL_VIDEO_PROB:
        for k in range(int(rng_polyp.choice([1, 1, 1, 2]))):
            t_best = rng_polyp.uniform(0.1, 0.9) * (T - 1)
            z_cam = float(np.interp(t_best, np.arange(T), cam.z))
            polyp = make_polyp(rng_polyp, k + 1, z_cam + rng_polyp.uniform(0.35, 1.0))
            polyps.append(replace(polyp, radius=polyp.radius * stream.polyp_scale))  # x1.0 is exact
    q_spec = rng_misc.uniform(0.003, 0.012)  # fraction of the field that is specular
    spec_wobble = _wander(rng_misc, np.arange(T, dtype=np.float64), T)
    overlay = _Overlay(style, size, seed, rng_misc)
    noise_rng = np.random.default_rng([seed, 4])

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xx += 0.5
    yy += 0.5
    fov_idx = np.flatnonzero(fov.mask)
    min_area = max(int(MIN_AREA_FRACTION * H * W), 4)
    masks = np.zeros((T, H, W), np.uint8)
    haze = (wall.base_colour * 0.015).astype(np.float32)
    vignette3 = fov.vignette[..., None]
    fov_u8 = fov.mask.astype(np.uint8)[..., None]
    tone = (np.linspace(0, 1, LUT_SIZE, dtype=np.float32) ** np.float32(style.gamma)) * np.float32(255.0)
    first = {p.track_id: -1 for p in polyps}
    last = dict(first)
    for t in range(T):
        vx, vy = float(cam.vp[t][0]), float(cam.vp[t][1])
        rho, ang = cv2.cartToPolar(xx - vx, yy - vy)
        theta = ang - np.float32(cam.roll[t])
        z = (fpx * tube_radius(theta) / (rho + 0.5)).astype(np.float32)
        np.minimum(z, Z_FAR, out=z)
        map_x = (theta * np.float32(wall.cols / (2 * np.pi))) % wall.cols
        map_y = (z + np.float32(cam.z[t] - wall.z0)) * np.float32(wall.rows_per_unit)
        img = cv2.remap(wall.albedo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        spec = cv2.remap(wall.specular, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        light = np.float32(style.exposure) / (1.0 + cv2.pow(z * np.float32(1 / LIGHT_Z), 2.6))
        img *= light[..., None]
        img += haze
        spec *= np.clip(light * 1.5, 0, 1)

        # polyps, far to near
        for p in sorted(polyps, key=lambda q: -(q.z - cam.z[t])):
            zp = p.z - cam.z[t]
            if zp < 0.12:  # behind or at the lens
                continue
            lp = style.exposure / (1.0 + (zp / LIGHT_Z) ** 2.6)
            if lp < MIN_POLYP_LIGHT * style.exposure:
                continue
            th = p.theta + cam.roll[t]
            rp = fpx * tube_radius(p.theta) / zp
            centre = (vx + rp * np.cos(th), vy + rp * np.sin(th))
            out = render_polyp(p, centre, (-np.cos(th), -np.sin(th)), fpx / zp, (H, W))
            if out is None:
                continue
            (y0, y1, x0, x1), alpha, shade, tex, pspec, shadow = out
            inside = (alpha >= 0.5) & fov.mask[y0:y1, x0:x1]
            if int(inside.sum()) < min_area:
                continue
            a3 = alpha[..., None]
            under = img[y0:y1, x0:x1] * (1 - 0.6 * shadow)[..., None]
            # the polyp takes the colour and brightness of the lit mucosa it sits on (so it is colour-matched),
            # shifted by its tint; the dome shading (mean about 0.8, top about 1) redistributes that light top to rim
            wall_lit = (img[y0:y1, x0:x1] * a3).sum(axis=(0, 1)) / max(float(alpha.sum()), 1e-6)
            wall_lit = np.maximum(wall_lit, wall.base_colour * lp * 0.5)
            colour = wall_lit * np.asarray(p.tint, np.float32) / 0.9
            col = colour[None, None, :] * (shade * (1 + p.texture_strength * tex))[..., None]
            col = 0.85 * col + 0.15 * under  # a little of the wall (vessels, shading) shows through
            img[y0:y1, x0:x1] = under * (1 - a3) + col * a3
            spec[y0:y1, x0:x1] = spec[y0:y1, x0:x1] * (1 - alpha) + alpha * pspec * min(lp * 0.8, 0.6)
            masks[t, y0:y1, x0:x1][inside] = p.track_id
            if first[p.track_id] < 0:
                first[p.track_id] = t
            last[p.track_id] = t

        img *= vignette3
        if t > 0:
            kern = _motion_kernel(*(cam.vp[t] - cam.vp[t - 1] + cam.shake[t]))
            if kern is not None:
                img = cv2.filter2D(img, -1, kern, borderType=cv2.BORDER_REFLECT)
        # specular highlights: the brightest-propensity pixels of the field, a fixed small fraction
        k = max(int(q_spec * (1 + 0.3 * spec_wobble[t]) * len(fov_idx)), 1)
        score = spec.reshape(-1)[fov_idx]
        thr = np.partition(score, len(score) - k)[len(score) - k]
        core = np.zeros(H * W, np.float32)
        core[fov_idx[score >= max(thr, 1e-4)]] = 1.0
        core = core.reshape(H, W)
        glow = cv2.GaussianBlur(core, (0, 0), 1.2 * size / 256)
        glow = np.minimum(glow * 1.8 + core, 1.0)[..., None]
        # tone curve (display gamma) through a lookup table, optics softness, then the highlights on top
        idx = np.clip(img * (LUT_SIZE - 1), 0, LUT_SIZE - 1).astype(np.int32)
        img = tone[idx]
        if style.resolution < 1.0:
            small = max(int(size * style.resolution), 8)
            img = cv2.resize(
                cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA),
                (W, H),
                interpolation=cv2.INTER_LINEAR,
            )
        img += (255.0 - img) * glow
        img += noise_rng.standard_normal((H, W, 1), dtype=np.float32) * np.float32(style.noise)
        np.clip(img, 0, 255, out=img)
        frame = img.astype(np.uint8)
        frame *= fov_u8
        overlay.draw(frame, t / fps)
        yield frame

    tracks = [
        Track(p.track_id, p.kind, first[p.track_id], last[p.track_id], round(p.radius, 4)) for p in polyps
    ]
    gt = PhantomGroundTruth.from_masks(
        masks,
        fps=float(fps),
        site=style.name,
        seed=int(seed),
        tracks=tracks,
        lumen=cam.vp.astype(np.float32),
        polyp_scale=stream.polyp_scale,
    )
    stream.ground_truth = gt
