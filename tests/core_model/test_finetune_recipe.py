"""Recipe pieces: schedules, layer-wise lr decay, augmentation that keeps labels on the objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.finetune import augment as A
from core_model.finetune import schedules as S


def test_cosine_schedule_warms_up_then_decays_to_final():
    s = S.cosine_scheduler(1.0, 0.1, epochs=5, niter_per_ep=10, warmup_epochs=1)
    assert len(s) == 50
    assert s[0] == 0.0 and s[9] == pytest.approx(1.0)  # linspace includes both ends (dino)
    assert s[10] == pytest.approx(1.0)
    assert np.all(np.diff(s[10:]) <= 1e-12)
    assert s[-1] == pytest.approx(0.1, abs=2e-3)
    with pytest.raises(ValueError):
        S.cosine_scheduler(1.0, 0.0, epochs=0, niter_per_ep=10)


def test_poly_and_multistep_schedules():
    p = S.poly_scheduler(1e-4, 100)
    assert p[0] == pytest.approx(1e-4) and p[-1] < 1e-5
    m = S.multistep_scheduler(1.0, 10, milestones=[5, 8], gamma=0.5, warmup_iters=2, warmup_factor=1 / 3)
    assert m[0] == pytest.approx(1 / 3) and m[4] == pytest.approx(1.0)
    assert m[5] == pytest.approx(0.5) and m[9] == pytest.approx(0.25)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Module()
        self.backbone.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
        self.backbone.patch_embed = torch.nn.Linear(4, 4)
        self.backbone.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])
        self.backbone.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)


def test_layer_decay_scales_deeper_layers_higher_and_skips_decay_on_bias_and_tokens():
    m = _Toy()
    m.backbone.blocks[0].weight.requires_grad_(False)
    groups = S.param_groups_lrd(m, weight_decay=0.05, layer_decay=0.5, depth=3, no_weight_decay=["cls_token"])
    by_name = {n: g for g in groups for n in g["names"]}
    assert "backbone.blocks.0.weight" not in by_name  # frozen parameters are not optimised
    assert by_name["head.weight"]["lr_scale"] == 1.0
    assert by_name["backbone.blocks.2.weight"]["lr_scale"] == 0.5
    assert by_name["backbone.blocks.0.bias"]["lr_scale"] == 0.125
    assert by_name["backbone.patch_embed.weight"]["lr_scale"] == 0.0625
    assert by_name["backbone.cls_token"]["weight_decay"] == 0.0
    assert by_name["backbone.blocks.1.bias"]["weight_decay"] == 0.0
    assert by_name["head.weight"]["weight_decay"] == 0.05
    opt = torch.optim.AdamW(groups, lr=1.0)
    S.apply_lr(opt, 2.0)
    assert sorted({g["lr"] for g in opt.param_groups}) == [0.125, 0.25, 0.5, 1.0, 2.0]


def _scene(h=96, w=128, t=4):
    frames = np.zeros((t, h, w, 3), np.uint8)
    masks = np.zeros((t, h, w), np.int64)
    boxes = []
    for i in range(t):
        y0, x0 = 20 + 3 * i, 30 + 5 * i
        frames[i, y0 : y0 + 30, x0 : x0 + 40] = 250
        masks[i, y0 : y0 + 30, x0 : x0 + 40] = 1
        boxes.append(torch.tensor([[x0, y0, x0 + 40, y0 + 30]], dtype=torch.float32))
    targets = A.ClipTargets(
        torch.from_numpy(masks),
        boxes,
        [torch.zeros(1, dtype=torch.long) for _ in range(t)],
        [torch.ones(1, dtype=torch.long) for _ in range(t)],
    )
    return frames, targets


@pytest.mark.parametrize("seed", range(6))
def test_augmented_masks_and_boxes_stay_on_the_object(seed):
    frames, targets = _scene()
    cfg = A.AugmentConfig(size=64, hflip=0.5, vflip=0.5, brightness=0.0, contrast=0.0, saturation=0.0)
    x, out = A.transform_clip(frames, targets, cfg, np.random.default_rng(seed))
    assert x.shape == (3, 4, 64, 64)
    for t in range(4):
        bright = x[0, t] > 0.5
        m = out.masks[t] == 1
        if m.sum() == 0:
            assert out.boxes[t].shape[0] == 0 or bright.sum() < 40
            continue
        inter = (bright & m).sum().item()
        assert inter / m.sum().item() > 0.9 and inter / bright.sum().item() > 0.9
        if out.boxes[t].shape[0]:
            ys, xs = torch.nonzero(m, as_tuple=True)
            x0, y0, x1, y1 = out.boxes[t][0].tolist()
            assert abs(x0 - xs.min().item()) <= 2 and abs(x1 - (xs.max().item() + 1)) <= 2
            assert abs(y0 - ys.min().item()) <= 2 and abs(y1 - (ys.max().item() + 1)) <= 2
            assert out.track_ids[t].tolist() == [1]


def test_eval_transform_is_a_plain_resize_and_normalize():
    frames, targets = _scene()
    x, out = A.transform_clip(frames, targets, A.AugmentConfig(size=64), rng=None)
    b = out.boxes[0][0].tolist()
    assert b == pytest.approx([30 * 64 / 128, 20 * 64 / 96, 70 * 64 / 128, 50 * 64 / 96])
    n = A.normalize(x, (0.45,) * 3, (0.225,) * 3)
    assert n.min().item() == pytest.approx(-2.0, abs=1e-5)
    with pytest.raises(ValueError, match="frames"):
        A.transform_clip(frames[..., 0], None, A.AugmentConfig())
