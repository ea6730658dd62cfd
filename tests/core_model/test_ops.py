"""The pure-PyTorch box ops (used by the desktop bundle, which has no torchvision) match torchvision's."""

import pytest
import torch

import core_model.ops as ops

tv = pytest.importorskip("torchvision.ops")


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    return torch.cat([xy, xy + wh], 1)


@pytest.fixture
def pure(monkeypatch):
    monkeypatch.setattr(ops, "HAVE_TORCHVISION", False)


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_torchvision(pure, seed):
    b = _boxes(200, seed)
    s = torch.rand(200, generator=torch.Generator().manual_seed(seed + 10))
    c = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(seed + 20))
    ours = ops.batched_nms(b, s, c, 0.5)
    theirs = tv.batched_nms(b, s, c, 0.5)
    assert torch.equal(ours, theirs)
    assert ops.batched_nms(b[:0], s[:0], c[:0], 0.5).numel() == 0


def test_losses_match_torchvision(pure):
    a, b = _boxes(64, 1), _boxes(64, 2)
    for red in ("none", "mean", "sum"):
        torch.testing.assert_close(
            ops.generalized_box_iou_loss(a, b, red), tv.generalized_box_iou_loss(a, b, red)
        )
    x = torch.randn(32, 3)
    t = (torch.rand(32, 3) > 0.7).float()
    for red in ("none", "mean", "sum"):
        torch.testing.assert_close(
            ops.sigmoid_focal_loss(x, t, reduction=red), tv.sigmoid_focal_loss(x, t, reduction=red)
        )


@pytest.mark.parametrize("n", [200, 1500])  # 1,500 boxes: torchvision's per-class strategy (> 4,000 numbers)
def test_compiled_nms_without_importing_torchvision_matches_torchvision(n):
    """The predict path loads torchvision's compiled NMS operator from its library file (importing the torchvision
    package costs ~1.5 s of start-up): same kept boxes, in the same order, as ``torchvision.ops.batched_nms``."""
    assert ops._tv_nms() is not None
    b = _boxes(n, n)
    s = torch.rand(n, generator=torch.Generator().manual_seed(n + 1))
    c = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(n + 2))
    assert torch.equal(ops.batched_nms(b, s, c, 0.6), tv.batched_nms(b, s, c, 0.6))
