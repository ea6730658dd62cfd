"""Views per clip (reference §3.2) and the augmentations (§3.3), with the official quirks and their switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.pretrain.augment import ViewParams, augment_views, crop_params, draw_view_params, grayscale
from core_model.pretrain.config import AugmentConfig, ViewsConfig
from core_model.pretrain.views import sample_view_indices


def test_official_150_frame_clip_views():
    views = sample_view_indices(150, 30.0, ViewsConfig(), np.random.default_rng(0))
    assert len(views) == 10
    assert views[0].tolist() == [0, 20, 41, 62, 82, 103, 124, 145]  # the reference's worked example
    assert len(views[1]) == 16 and views[1][0] == 5 and views[1][-1] == 149
    assert [len(v) for v in views[2:]] == [2, 2, 4, 4, 8, 8, 16, 16]
    for v in views[2:]:  # a short dense window of width L // 8 = 18
        assert v[-1] - v[0] == 18 and 0 <= v[0] and v[-1] <= 149


def test_long_video_uses_a_256_frame_window_and_differs_by_seed():
    a = sample_view_indices(3000, 30.0, ViewsConfig(), np.random.default_rng(1))
    b = sample_view_indices(3000, 30.0, ViewsConfig(), np.random.default_rng(2))
    for views in (a, b):
        flat = np.concatenate(views)
        assert flat.max() - flat.min() <= 255
    assert a[0][0] != b[0][0]
    # 60 fps video: the window covers the same 8.5 s, i.e. 512 frames
    c = sample_view_indices(6000, 60.0, ViewsConfig(), np.random.default_rng(1))
    assert c[1][-1] - c[0][0] == 511


class _Scripted:
    """Stands in for np.random.Generator with scripted draws."""

    def __init__(self, uniforms, integers):
        self.u, self.i = list(uniforms), list(integers)

    def uniform(self, lo, hi):
        return self.u.pop(0)

    def integers(self, lo, hi):
        return self.i.pop(0)


def test_crop_quirk_keeps_stale_offsets_and_the_last_size():
    # 9 attempts that fit (scale 0.25, ratio 1 -> 50x50 of 100x100), the 10th is too big (scale 4 -> 200x200)
    uniforms = []
    for _ in range(9):
        uniforms += [0.25, 0.0]
    uniforms += [4.0, 0.0]
    integers = [7, 11] * 9
    i, j, h, w = crop_params(100, 100, (0.05, 4.0), (0.75, 1.33), _Scripted(uniforms, integers), True)
    assert (i, j, h, w) == (7, 11, 200, 200)  # offsets of an earlier attempt, size of the last
    fixed = crop_params(100, 100, (0.05, 4.0), (0.75, 1.33), _Scripted(uniforms, integers), False)
    assert fixed == (7, 11, 50, 50)  # first fitting attempt


def test_crop_falls_back_to_centre_when_nothing_fits():
    rng = _Scripted([4.0, 0.0] * 10, [])
    assert crop_params(100, 300, (4.0, 4.0), (0.75, 4 / 3), rng, True) == (0, 83, 100, 133)


def _params(**kw) -> ViewParams:
    base = dict(
        crop=(0, 0, 32, 32), flip=False, jitter=False, order=(0, 1, 2), brightness=1.0, contrast=1.0,
        saturation=1.0, gray=False, blur=False, sigma=1.0, solarize=False,
    )  # fmt: skip
    base.update(kw)
    return ViewParams(**base)


def _raw(view: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Undo the normalisation: [3, T, S, S] -> [T, 3, S, S] in [0, 1] units."""
    mean = torch.tensor(cfg.mean).view(3, 1, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1, 1)
    return (view * std + mean).permute(1, 0, 2, 3)


def test_views_have_official_shapes_and_share_params_across_frames():
    cfg = AugmentConfig()
    rng = np.random.default_rng(0)
    frame = np.random.default_rng(1).integers(0, 255, (1, 64, 80, 3), dtype=np.uint8)
    frames = torch.from_numpy(np.repeat(frame, 6, axis=0))  # 6 identical frames
    positions = [torch.arange(0, 4), torch.arange(0, 6)] + [torch.arange(0, 2)] * 2
    sizes = [32, 32, 16, 16]
    params = [draw_view_params(64, 80, k, cfg, rng) for k in (0, 1, 2, 2)]
    views = augment_views(frames, positions, sizes, params, cfg)
    assert [tuple(v.shape) for v in views] == [(3, 4, 32, 32), (3, 6, 32, 32), (3, 2, 16, 16), (3, 2, 16, 16)]
    for v in views:  # identical input frames stay identical: one set of random parameters per view
        assert torch.allclose(v[:, :1].expand_as(v), v)


def test_grayscale_channel_quirk_is_switchable():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert torch.allclose(grayscale(red, bgr_quirk=True), torch.full((1, 1, 2, 2), 0.114))
    assert torch.allclose(grayscale(red, bgr_quirk=False), torch.full((1, 1, 2, 2), 0.299))


def test_flip_and_jitter_do_what_they_say():
    cfg = AugmentConfig()
    img = torch.linspace(0, 1, 32).repeat(32, 1)  # horizontal ramp
    frames = (img[None, :, :, None].expand(1, 32, 32, 3) * 255).round().to(torch.uint8)
    pos = [torch.tensor([0])]
    plain = _raw(augment_views(frames, pos, [32], [_params()], cfg)[0], cfg)
    flipped = _raw(augment_views(frames, pos, [32], [_params(flip=True)], cfg)[0], cfg)
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-5)
    bright = _raw(augment_views(frames, pos, [32], [_params(jitter=True, brightness=0.5)], cfg)[0], cfg)
    assert torch.allclose(bright, plain * 0.5, atol=1e-5)


def test_blur_and_solarise_are_official_noops_by_default_and_work_when_switched_on():
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    off = [draw_view_params(64, 64, 0, AugmentConfig(), rng_a) for _ in range(20)]
    on = [draw_view_params(64, 64, 0, AugmentConfig(blur_solarize=True), rng_b) for _ in range(20)]
    assert not any(p.blur for p in off) and all(
        p.blur for p in on
    )  # global 1 blurs with p = 1.0 when working
    assert [p.crop for p in off] == [p.crop for p in on]  # same draws either way
    cfg = AugmentConfig(blur_solarize=True)
    checker = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    frames = torch.from_numpy(np.repeat(checker[None, :, :, None], 3, axis=3))
    pos = [torch.tensor([0])]
    sharp = _raw(augment_views(frames, pos, [32], [_params()], cfg)[0], cfg)
    blurred = _raw(augment_views(frames, pos, [32], [_params(blur=True, sigma=1.5)], cfg)[0], cfg)
    assert sharp.std() > 0.45 and blurred.std() < 0.1
    bright = torch.full((1, 32, 32, 3), 204, dtype=torch.uint8)
    sol = _raw(augment_views(bright, pos, [32], [_params(solarize=True)], cfg)[0], cfg)
    assert torch.allclose(sol, torch.full_like(sol, 51 / 255), atol=1e-5)


@pytest.mark.parametrize("quirks", [True, False])
def test_random_views_are_finite_and_normalised(quirks):
    cfg = AugmentConfig(official_quirks=quirks, blur_solarize=not quirks)
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(np.random.default_rng(4).integers(0, 255, (8, 48, 64, 3), dtype=np.uint8))
    positions = [torch.arange(0, 8, 2), torch.arange(0, 8)] + [torch.arange(2, 4)] * 8
    sizes = [32, 32] + [16] * 8
    params = [draw_view_params(48, 64, k, cfg, rng) for k in [0, 1] + [2] * 8]
    views = augment_views(frames, positions, sizes, params, cfg)
    for v in views:
        assert torch.isfinite(v).all()
        if not quirks:
            raw = _raw(v, cfg)
            assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
