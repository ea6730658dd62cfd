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


def test_presets_reproduce_the_papers_protocols():
    from core_model.finetune.config import FinetuneConfig
    from core_model.finetune.presets import get_preset

    pd = FinetuneConfig(**get_preset("polypdiag"))
    assert pd.mean == (0.45, 0.45, 0.45) and pd.std == (0.225, 0.225, 0.225)
    assert pd.num_frames == 8 and pd.img_size == 224 and pd.window == "linspace"
    assert (
        pd.optimizer == "sgd" and pd.lr == pytest.approx(1.5625e-5) and pd.epochs == 20 and pd.batch_size == 4
    )
    assert pd.augment.eval_crop == "short_side_corner" and pd.monitor_metric == "classification/f1"
    off = FinetuneConfig(**get_preset("cvc12k-official"))
    free = FinetuneConfig(**get_preset("cvc12k-leakfree"))
    assert off.select_best and not free.select_best  # no model selection on the test sequences
    assert off.schedule == "poly" and off.seed == 9041 and off.mean == (0.5, 0.5, 0.5)
    kumc = FinetuneConfig(**get_preset("kumc"))
    assert kumc.img_size == 640 and kumc.num_frames == 3 and kumc.schedule == "multistep"
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_polypdiag_crops_scale_jitter_and_left_square():
    frames = np.zeros((2, 96, 128, 3), np.uint8)
    frames[:, :, :96] = 200  # the left 96x96 square is bright, the right strip dark
    cfg = A.AugmentConfig(size=32, eval_crop="short_side_corner", crop="scale_jitter", short_side=(36, 40))
    x, _ = A.transform_clip(frames, None, cfg, rng=None)
    assert x.min().item() > 0.7  # only the left square was kept
    y, _ = A.transform_clip(
        frames,
        None,
        A.AugmentConfig(
            size=32, crop="scale_jitter", short_side=(36, 40), brightness=0, contrast=0, saturation=0
        ),
        np.random.default_rng(0),
    )
    assert y.shape == (3, 2, 32, 32)


def test_machine_plan_on_cpu_runs_small_models_and_warns_for_base():
    import torch

    from core_model.finetune.machine import is_oom, plan_machine

    tiny = plan_machine(torch.device("cpu"), "endofm_tiny")
    base = plan_machine(torch.device("cpu"), "endofm_base")
    assert tiny.batch_size == 4 and tiny.amp_dtype == "fp32" and not tiny.grad_checkpointing
    assert base.batch_size == 1 and "slow" in base.note
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory")) and not is_oom(ValueError("x"))


@pytest.mark.gpu
def test_endofm_base_fine_tunes_in_12_gb():
    """On a larger GPU, capped at 12 GiB: the engine's measured plan fits endofm_base (classification, 8x224)."""
    import torch

    from core_model.finetune.engine import make_targets  # noqa: F401  (the engine's target format)
    from core_model.finetune.machine import plan_machine
    from core_model.heads import ClassificationHead, EndoFMTaskModel
    from core_model.models import create_model

    dev = torch.device("cuda")
    frac = min(1.0, 12 * 2**30 / torch.cuda.get_device_properties(dev).total_memory)
    torch.cuda.set_per_process_memory_fraction(frac, dev)
    try:
        model = EndoFMTaskModel(
            create_model("endofm_base"), {"classification": ClassificationHead(768, ["n", "a"])}
        )
        model.to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def probe(b: int, gc_on: bool) -> None:
            model.backbone.set_grad_checkpointing(gc_on)
            x = torch.randn(b, 3, 8, 224, 224, device=dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x)
            model.losses(out, {"classification": torch.zeros(b, dtype=torch.long, device=dev)})[
                "loss"
            ].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        plan = plan_machine(dev, "endofm_base", "auto", "auto", 0, 12.0, probe=probe)
        assert plan.batch_size >= 1 and plan.budget_bytes <= 12 * 2**30
        probe(plan.batch_size, plan.grad_checkpointing)  # the plan really fits
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
