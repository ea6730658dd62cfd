"""Box operations: torchvision's compiled ops where torchvision is installed, exact pure-PyTorch equivalents otherwise.

The desktop bundle ships the CPU build of PyTorch without torchvision (its PyPI wheels are built against the CUDA
build of torch and do not load beside the CPU wheel), so inference must not need it. Training installs use
torchvision; ``tests/core_model/test_ops.py`` checks both paths give the same results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # pragma: no branch - which branch runs depends on the install
    from torchvision.ops import batched_nms as _tv_batched_nms
    from torchvision.ops import generalized_box_iou_loss as _tv_giou_loss
    from torchvision.ops import sigmoid_focal_loss as _tv_focal_loss

    HAVE_TORCHVISION = True
except Exception:  # ImportError, or the operator-registration RuntimeError of a mismatched wheel
    HAVE_TORCHVISION = False


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix of boxes ``a: [N, 4]`` and ``b: [M, 4]`` in (x0, y0, x1, y1) -> ``[N, M]``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-12)


def _nms_torch(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    iou = box_iou(boxes, boxes)
    n = boxes.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    # Greedy suppression over the score-sorted IoU matrix; O(N) Python steps over rows, each vectorised.
    suppress = (iou > iou_threshold).triu(diagonal=1)
    for i in range(n):
        if keep[i]:
            keep &= ~suppress[i]
    return order[keep]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Per-class NMS; returns kept indices sorted by decreasing score (same contract as torchvision)."""
    if HAVE_TORCHVISION:
        return _tv_batched_nms(boxes, scores, idxs, iou_threshold)
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # offset boxes per class so that boxes of different classes never overlap (torchvision's trick)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms_torch(boxes + offsets[:, None], scores, iou_threshold)


def generalized_box_iou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
):
    """1 - GIoU of paired boxes ``[N, 4]`` (same contract as torchvision)."""
    if HAVE_TORCHVISION:
        return _tv_giou_loss(boxes1, boxes2, reduction=reduction, eps=eps)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    xk1, yk1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xk2, yk2 = torch.min(x2, x2g), torch.min(y2, y2g)
    inter = torch.zeros_like(x1)
    mask = (yk2 > yk1) & (xk2 > xk1)
    inter[mask] = (xk2[mask] - xk1[mask]) * (yk2[mask] - yk1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    loss = 1 - (iou - ((area_c - union) / (area_c + eps)))
    return _reduce(loss, reduction)


def sigmoid_focal_loss(inputs, targets, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"):
    """Focal loss of RetinaNet on logits (same contract as torchvision)."""
    if HAVE_TORCHVISION:
        return _tv_focal_loss(inputs, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"invalid reduction {reduction!r}: expected 'none', 'mean' or 'sum'")
