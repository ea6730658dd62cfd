"""DINO head (§3.6), loss (§3.5), view grouping (§3.4) and the optimisation pieces (§3.7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from core_model.pretrain.head import DINOHead, MultiCropWrapper, group_views
from core_model.pretrain.loss import DINOLoss
from core_model.pretrain.optim import (
    cancel_last_layer_grads,
    clip_gradients_per_param,
    cosine_scheduler,
    ema_update,
    param_groups,
)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # the legacy weight_norm is the reference here
def test_head_has_official_keys_shapes_and_unit_norm_rows():
    head = DINOHead(768, 65536)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "mlp.0.weight": (2048, 768),
        "mlp.0.bias": (2048,),
        "mlp.2.weight": (2048, 2048),
        "mlp.2.bias": (2048,),
        "mlp.4.weight": (256, 2048),
        "mlp.4.bias": (256,),
        "last_layer.weight_g": (65536, 1),
        "last_layer.weight_v": (65536, 256),
    }
    assert sum(v.numel() for v in head.state_dict().values()) == 23_138_560
    assert not head.last_layer.weight_g.requires_grad
    small = DINOHead(16, 32, hidden_dim=8, bottleneck_dim=4)
    w = small.last_layer.weight
    assert torch.allclose(w.norm(dim=1), torch.ones(32), atol=1e-6)
    # a legacy nn.utils.weight_norm layer's state dict loads into ours and gives the same outputs
    legacy = torch.nn.utils.weight_norm(nn.Linear(4, 32, bias=False))
    small.last_layer.load_state_dict(legacy.state_dict())
    x = torch.randn(3, 4)
    assert torch.allclose(small.last_layer(x), legacy(x), atol=1e-6)


def test_head_batchnorm_is_optional_and_standardises_each_hidden_unit_over_the_batch():
    assert not any(
        isinstance(m, nn.BatchNorm1d) for m in DINOHead(16, 32, hidden_dim=8).modules()
    )  # official
    head = DINOHead(16, 32, hidden_dim=8, bottleneck_dim=4, use_bn=True)
    bns = [m for m in head.mlp if isinstance(m, nn.BatchNorm1d)]
    assert len(bns) == 2 and [type(m).__name__ for m in head.mlp][:3] == ["Linear", "BatchNorm1d", "GELU"]
    # nearly identical inputs (an untrained backbone): without BN the outputs barely differ, with BN they do
    x = torch.randn(1, 16) + 1e-3 * torch.randn(8, 16)
    plain = DINOHead(16, 32, hidden_dim=8, bottleneck_dim=4)
    spread = lambda out: F.normalize(out, dim=1).std(dim=0).mean().item()  # noqa: E731
    assert spread(head(x)) > 100 * spread(plain(x))


def test_views_are_grouped_like_the_official_split_points():
    shapes = [(8, 224, 224), (16, 224, 224), (2, 96, 96), (2, 96, 96), (4, 96, 96), (4, 96, 96)]
    shapes += [(8, 96, 96), (8, 96, 96), (16, 96, 96), (16, 96, 96)]
    assert group_views(shapes) == [(0, 1), (1, 2), (2, 4), (4, 6), (6, 8), (8, 10)]

    calls = []

    class Backbone(nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return x.mean(dim=(2, 3, 4)).repeat(1, 2)  # [N, 6]

    wrapper = MultiCropWrapper(Backbone(), nn.Identity())
    views = [torch.full((2, 3, t, s, s), float(v)) for v, (t, s, _) in enumerate(shapes)]
    out = wrapper(views)
    assert calls == [(2, 3, 8, 224, 224), (2, 3, 16, 224, 224)] + [(4, 3, t, 96, 96) for t in (2, 4, 8, 16)]
    assert out.shape == (20, 6) and out[:, 0].tolist() == [float(v) for v in range(10) for _ in range(2)]


def test_loss_is_the_mean_over_18_pairs_and_centre_moves_with_momentum():
    torch.manual_seed(0)
    B, K, V = 3, 16, 10
    s = torch.randn(V * B, K)
    t = torch.randn(2 * B, K)
    loss_fn = DINOLoss(K, V, np.full(5, 0.04))
    loss_fn.center.fill_(0.5)
    loss = loss_fn(s, t, epoch=0)
    q = F.softmax((t - 0.5) / 0.04, dim=-1).chunk(2)
    logp = F.log_softmax(s / 0.1, dim=-1).chunk(V)
    terms = [(-q[i] * logp[v]).sum(-1).mean() for i in range(2) for v in range(V) if v != i]
    assert len(terms) == 18
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    expected_center = 0.9 * 0.5 + 0.1 * t.mean(dim=0, keepdim=True)
    assert torch.allclose(loss_fn.center, expected_center, atol=1e-6)


def test_centre_can_start_at_the_first_batch_instead_of_zero():
    """Official: the centre starts at zero, so on the first step a shared dominant output dimension gives every
    sample the same sharp target. ``center_init="first_batch"`` removes it from the first step on."""
    torch.manual_seed(0)
    B, K, V = 4, 32, 4
    t = torch.randn(2 * B, K) * 0.01
    t[:, 3] += 1.0  # every sample's largest output is dimension 3 (an untrained network's shared direction)
    s = torch.randn(V * B, K)

    def expected(q: torch.Tensor) -> torch.Tensor:
        qs, logp = q.chunk(2), F.log_softmax(s / 0.1, dim=-1).chunk(V)
        return torch.stack(
            [(-qs[i] * logp[v]).sum(-1).mean() for i in range(2) for v in range(V) if v != i]
        ).mean()

    q_zero = F.softmax(t / 0.04, dim=-1)
    q_first = F.softmax((t - t.mean(dim=0, keepdim=True)) / 0.04, dim=-1)
    assert (q_zero.argmax(dim=1) == 3).all() and q_zero[:, 3].min() > 0.99  # one shared one-hot target
    assert (q_first.argmax(dim=1) != 3).any() and q_first[:, 3].max() < 0.5  # per-sample targets

    official = DINOLoss(K, V, np.full(2, 0.04))
    assert torch.allclose(official(s, t, epoch=0), expected(q_zero), atol=1e-5)
    fresh = DINOLoss(K, V, np.full(2, 0.04), center_init="first_batch")
    assert torch.allclose(fresh(s, t, epoch=0), expected(q_first), atol=1e-5)
    assert torch.allclose(fresh.center, t.mean(dim=0, keepdim=True), atol=1e-6)  # 0.9 * mean + 0.1 * mean
    fresh(s, t + 1.0, epoch=0)  # later batches only move the centre with momentum
    assert torch.allclose(fresh.center, t.mean(dim=0, keepdim=True) + 0.1, atol=1e-5)
    with pytest.raises(ValueError, match="center_init"):
        DINOLoss(K, V, np.full(2, 0.04), center_init="mean")


def test_sinkhorn_targets_spread_a_batch_over_the_prototypes():
    """``centering="sinkhorn"``: targets are row-stochastic and share the prototypes about equally over the batch,
    even when every sample's raw output favours the same prototype (where plain softmax gives one shared target)."""
    from core_model.pretrain.loss import sinkhorn_knopp

    torch.manual_seed(0)
    N, K = 64, 16
    logits = torch.randn(N, K) / 0.1
    logits[:, 5] += 40.0  # far beyond fp32 exp range without the max shift
    q = sinkhorn_knopp(logits, n_iter=5)
    assert torch.isfinite(q).all()
    assert torch.allclose(q.sum(dim=1), torch.ones(N), atol=1e-4)
    share = q.sum(dim=0) / N
    assert share.max() < 2.0 / K and (q.argmax(dim=1) != 5).any()
    loss_fn = DINOLoss(K, 4, np.full(2, 0.1), centering="sinkhorn")
    loss = loss_fn(torch.randn(4 * N // 2, K), logits[: N // 2 * 2] * 0.1, epoch=0)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="centering"):
        DINOLoss(K, 4, np.full(2, 0.1), centering="mean")


def test_param_groups_regularise_embeddings_but_not_biases_or_frozen():
    from core_model.models import create_model

    backbone = create_model("endofm_tiny", embed_dim=48, depth=1, num_heads=3, img_size=32)
    model = MultiCropWrapper(backbone, DINOHead(48, 32, 16, 8))
    reg, noreg = param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    reg_names = {names[id(p)] for p in reg["params"]}
    noreg_names = {names[id(p)] for p in noreg["params"]}
    assert {"backbone.pos_embed", "backbone.cls_token", "backbone.time_embed"} <= reg_names
    assert "backbone.blocks.0.temporal_fc.weight" in reg_names
    assert all(n.endswith(".bias") or "norm" in n for n in noreg_names) and noreg["weight_decay"] == 0.0
    assert "head.last_layer.weight_g" not in reg_names | noreg_names


def test_per_parameter_clipping_and_ema_match_a_python_loop():
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.randn(7)), nn.Parameter(torch.randn(3))]
    params[0].grad = torch.randn(5, 4) * 10  # norm >> 3: clipped
    params[1].grad = torch.randn(7) * 0.01  # small: untouched
    params[2].grad = None
    expected = []
    for p in params[:2]:
        g = p.grad.clone()
        expected.append(g * min(1.0, 3.0 / (g.norm().item() + 1e-6)))
    clip_gradients_per_param(params, 3.0)
    for p, e in zip(params[:2], expected):
        assert torch.allclose(p.grad, e, atol=1e-6)
    assert abs(params[0].grad.norm().item() - 3.0) < 1e-4
    teacher = [torch.randn(5, 4), torch.randn(7)]
    before = [t.clone() for t in teacher]
    ema_update(teacher, [params[0].detach(), params[1].detach()], 0.99)
    for t, b, s in zip(teacher, before, params):
        assert torch.allclose(t, 0.99 * b + 0.01 * s.detach(), atol=1e-6)


def test_last_layer_grads_dropped_only_during_the_first_epoch():
    head = DINOHead(8, 16, 8, 4)
    head(torch.randn(2, 8)).sum().backward()
    cancel_last_layer_grads(head, epoch=1, freeze_last_layer=1)
    assert head.last_layer.weight_v.grad is not None
    cancel_last_layer_grads(head, epoch=0, freeze_last_layer=1)
    assert head.last_layer.weight_v.grad is None and head.mlp[0].weight.grad is not None


def test_cosine_schedule_warms_up_linearly_then_decays():
    s = cosine_scheduler(1.0, 0.0, epochs=4, niter_per_ep=5, warmup_epochs=1)
    assert len(s) == 20
    assert np.allclose(s[:5], np.linspace(0, 1, 5))
    assert s[5] == 1.0 and np.all(np.diff(s[5:]) < 0) and s[-1] > 0
