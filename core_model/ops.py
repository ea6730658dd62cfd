"""Box operations: torchvision's compiled ops where torchvision is installed, exact pure-PyTorch equivalents otherwise.

The desktop bundle ships the CPU build of PyTorch without torchvision (its PyPI wheels are built against the CUDA
build of torch and do not load beside the CPU wheel), so inference must not need it. Training installs use
torchvision; ``tests/core_model/test_ops.py`` checks both paths give the same results. Nothing here imports the
``torchvision`` package at import time: NMS (the predict path) loads only its compiled operator, the training losses
import ``torchvision.ops`` on first use (docs/experiments/predict_speed.md).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

_TV: dict[str, object] = {}  # what was found: "nms" (the compiled op), "losses" (the two loss functions)


def _tv_nms():
    """torchvision's compiled NMS operator, loaded from its library file without importing the ``torchvision``
    package (whose ``__init__`` imports its models and ``torch._dynamo``: ~1.5 s of ``endofm predict``'s start-up
    on this machine, for one operator). ``None`` when torchvision is missing or its library does not load."""
    if "nms" not in _TV:
        _TV["nms"] = None
        try:
            import importlib.machinery
            import importlib.util

            spec = importlib.util.find_spec("torchvision")  # finds the package without running it
            if spec is not None and spec.submodule_search_locations:
                lib_dir = list(spec.submodule_search_locations)[0]
                for name in ("_C_stable", "_C"):  # the library's name in recent / older torchvision wheels
                    found = [
                        os.path.join(lib_dir, name + suffix)
                        for suffix in importlib.machinery.EXTENSION_SUFFIXES
                        if os.path.isfile(os.path.join(lib_dir, name + suffix))
                    ]
                    if found:
                        torch.ops.load_library(found[0])  # torchvision loads the same file: registered once
                        _TV["nms"] = torch.ops.torchvision.nms
                        break
        except Exception:  # OSError, or the operator-registration RuntimeError of a mismatched wheel
            _TV["nms"] = None
    return _TV["nms"]


def _tv_losses():
    """torchvision's (GIoU, focal) losses, imported on first use (training only), or ``None``."""
    if "losses" not in _TV:
        try:
            from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

            _TV["losses"] = (generalized_box_iou_loss, sigmoid_focal_loss)
        except Exception:  # ImportError, or the operator-registration RuntimeError of a mismatched wheel
            _TV["losses"] = None
    return _TV["losses"]


# Whether torchvision's compiled ops are used; the tests turn it off to compare the pure-PyTorch equivalents.
HAVE_TORCHVISION = True


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
    """Per-class NMS; returns kept indices sorted by decreasing score (same contract and the same two strategies as
    ``torchvision.ops.batched_nms``)."""
    nms = _tv_nms() if HAVE_TORCHVISION else None
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if nms is None:
        # offset boxes per class so that boxes of different classes never overlap (torchvision's trick)
        offsets = idxs.to(boxes) * (boxes.max() + 1)
        return _nms_torch(boxes + offsets[:, None], scores, iou_threshold)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):  # many boxes: one NMS per class
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            curr = torch.where(idxs == class_id)[0]
            keep_mask[curr[nms(boxes[curr], scores[curr], iou_threshold)]] = True
        keep = torch.where(keep_mask)[0]
        return keep[scores[keep].sort(descending=True)[1]]
    offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def generalized_box_iou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
):
    """1 - GIoU of paired boxes ``[N, 4]`` (same contract as torchvision)."""
    tv = _tv_losses() if HAVE_TORCHVISION else None
    if tv is not None:
        return tv[0](boxes1, boxes2, reduction=reduction, eps=eps)
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
    tv = _tv_losses() if HAVE_TORCHVISION else None
    if tv is not None:
        return tv[1](inputs, targets, alpha=alpha, gamma=gamma, reduction=reduction)
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
