"""The phantom looks like colonoscopy in ways that can be measured (issue 2's realism checks)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core_model.phantom import SITES, field_of_view, render_video

SIZE = 128


@pytest.fixture(scope="module", params=["default", "site_b"])
def site_clips(request):
    site = request.param
    clips = [render_video(seed, n_frames=24, size=SIZE, site=site) for seed in range(3)]
    return site, clips


def _boundary_radius(visible: np.ndarray, centre, angle_deg: float) -> float:
    """Distance from ``centre`` to the last visible pixel along a ray."""
    a = np.deg2rad(angle_deg)
    r = np.arange(0, SIZE, 0.25)
    xs = np.clip((centre[0] + r * np.cos(a)).astype(int), 0, SIZE - 1)
    ys = np.clip((centre[1] + r * np.sin(a)).astype(int), 0, SIZE - 1)
    on = visible[ys, xs]
    return float(r[np.flatnonzero(on)[-1]])


def test_field_of_view_shape_with_black_border(site_clips):
    site, clips = site_clips
    style = SITES[site]
    fov = field_of_view(style, SIZE)
    frames = np.concatenate([f for f, _ in clips])
    brightest = frames.max(axis=(0, 3))
    visible = brightest > 12
    # the border is black except the burned-in text; the field is lit somewhere over time
    overlay_free = ~fov.mask
    text = visible & overlay_free
    assert text.sum() > 30, "burned-in overlay text is missing"
    assert text.sum() < 0.08 * overlay_free.sum()
    assert visible[fov.mask].mean() > 0.97
    # outline: ratio of the radius at a flat side (0 deg) to a vertex (22.5 deg)
    c = fov.centre
    ratios = [
        _boundary_radius(visible & fov.mask, c, a) / _boundary_radius(visible & fov.mask, c, a + 22.5)
        for a in (0, 90, 180, 270)
    ]
    expected = np.cos(np.deg2rad(22.5)) if style.fov_shape == "octagon" else 1.0
    assert np.median(ratios) == pytest.approx(expected, abs=0.03)
    assert style.fov_shape in ("round", "octagon")


def test_red_pink_dominant_hue(site_clips):
    import cv2

    site, clips = site_clips
    fov = field_of_view(SITES[site], SIZE)
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for frames, _ in clips for f in frames])[:, fov.mask]
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    coloured = (v > 40) & (s > 50)
    assert coloured.mean() > 0.6  # mostly lit, saturated tissue
    hue = h[coloured].astype(int)  # OpenCV hue: 0..179, red at 0/180; +-30 deg = +-15
    assert ((hue <= 15) | (hue >= 165)).mean() > 0.9


def test_specular_highlights_cover_a_small_fraction(site_clips):
    site, clips = site_clips
    fov = field_of_view(SITES[site], SIZE)
    for frames, _ in clips:
        px = frames[:, fov.mask].astype(int)
        near_white = (px.min(-1) >= 200) & (px.max(-1) - px.min(-1) <= 45)
        frac = near_white.mean(axis=1)
        assert (frac >= 0.001).all() and (frac <= 0.02).all(), (site, frac)


def test_vignetting_darkens_the_periphery():
    """Same scene with and without the site's vignetting: the centre keeps its brightness, the rim loses it."""
    for site in ("default", "site_b"):
        style = SITES[site]
        a, _ = render_video(11, n_frames=6, size=SIZE, site=style)
        b, _ = render_video(11, n_frames=6, size=SIZE, site=replace(style, vignette=0.0))
        fov = field_of_view(style, SIZE)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        d = np.hypot(xx + 0.5 - fov.centre[0], yy + 0.5 - fov.centre[1]) / fov.radius
        va, vb = a.astype(np.float32).mean(-1), b.astype(np.float32).mean(-1)
        ok = (vb > 25) & (vb < 230)
        centre = (d < 0.3)[None] & ok
        rim = ((d > 0.8) & (d < 0.95))[None] & ok
        ratio_c = np.median(va[centre] / vb[centre])
        ratio_r = np.median(va[rim] / vb[rim])
        assert ratio_c > 0.93 and ratio_r < 0.85, (site, ratio_c, ratio_r)
        assert ratio_c - ratio_r > 0.12


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 1500):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    weight = np.where(y, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # class-balanced
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * weight
        w -= 0.5 * z.T @ g / len(y)
        b -= 0.5 * g.mean()
    return lambda q: ((q - mu) / sd) @ w + b > 0


def _balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * (pred[y].mean() + (~pred[~y]).mean())


def test_mean_frame_colour_cannot_separate_polyp_frames():
    """A classifier on mean frame colour, trained and tested on different videos, is near chance; the same
    classifier finds a polyp-frame colour shift of a few levels (positive control), so it is not just broken."""
    size = 80
    fov = field_of_view(SITES["default"], size)
    feats, labels, vids = [], [], []
    for seed in range(26):
        frames, gt = render_video(100 + seed, n_frames=24, size=size)
        feats.append(frames[:, fov.mask].astype(np.float32).mean(1))
        labels.append(gt.frame_has_polyp)
        vids.append(np.full(len(frames), seed))
    x, y, v = np.concatenate(feats), np.concatenate(labels), np.concatenate(vids)
    assert 0.2 < y.mean() < 0.8
    train, test = v < 17, v >= 17
    assert y[test].any() and (~y[test]).any()
    clf = _fit_logistic(x[train], y[train])
    acc = _balanced_accuracy(clf(x[test]), y[test])
    assert acc < 0.7, acc
    shifted = x.copy()
    shifted[y, 0] += 20.0  # what a polyp would do if it were clearly redder than the mucosa
    clf = _fit_logistic(shifted[train], y[train])
    assert _balanced_accuracy(clf(shifted[test]), y[test]) > 0.8
