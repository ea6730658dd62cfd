"""Per-frame box detection: a feature pyramid from the ViT tokens + FPN + P6/P7 + anchor-free FCOS.

Reference §5.3 (the paper's KUMC detector): the final-norm tokens of each frame become ``[B*T, D, Hp, Wp]`` maps
(stride = patch size, 16); ``ConvTranspose2d(k2, s2)`` gives stride 8, identity stride 16, ``MaxPool2d(2)`` stride 32;
an FPN (1x1 lateral + 3x3 output convs, nearest top-down) brings them to ``fpn_channels`` (256), and
``P6 = conv3x3 s2 (P5)``, ``P7 = conv3x3 s2 (ReLU(P6))`` complete strides 8/16/32/64/128. The FCOS head (shared over
levels): classification and regression towers of ``num_convs`` Conv3x3 + GN + ReLU, per-level learnable scales,
regression normalised by the level's stride (NORM_REG_TARGETS), centerness on the regression tower, centre sampling
radius 1.5, size ranges 64/128/256/512 px per level. Losses: sigmoid focal (alpha 0.25, gamma 2) / #positives,
GIoU weighted by the centerness targets, centerness BCE / #positives. The STFT temporal fusion is not implemented:
each frame is detected from its own tokens (which already mix time through the backbone's temporal attention).

Outputs:
- ``forward(feats)`` -> ``DetectionOutput`` (per-level logits for all ``B*T`` frames, rows ``b*T + t``);
- ``predict(out)`` -> one dict per frame (rows ``b*T + t``): ``{"boxes": float [K, 4] x0,y0,x1,y1 in model-input
  pixels, "scores": float [K] in (0, 1], "labels": long [K] index into classes}``, sorted by score, after
  class-wise NMS (IoU ``nms_threshold``). Score = sqrt(class probability * centerness) as in FCOS; candidates need a
  class probability above ``score_threshold``.
- ``loss(out, targets)``: ``targets`` is a list of ``B*T`` entries (rows ``b*T + t``), each ``None`` (frame not
  labelled: contributes nothing) or ``{"boxes": float [M, 4] (model-input pixels, x1/y1 exclusive), "labels": long
  [M] index into classes}``; ``M = 0`` is a reviewed frame with no object (all locations negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core_model.heads.base import TaskHead, check_classes
from core_model.heads.features import BackboneFeatures
from core_model.ops import batched_nms, generalized_box_iou_loss, sigmoid_focal_loss

__all__ = ["DetectionHead", "DetectionOutput"]

INF = float("inf")


@dataclass
class DetectionOutput:
    cls: list[torch.Tensor]  # per level [B*T, C, h, w] logits
    reg: list[torch.Tensor]  # per level [B*T, 4, h, w] (l, t, r, b) / stride, >= 0
    ctr: list[torch.Tensor]  # per level [B*T, 1, h, w] centerness logits
    strides: list[int]
    image_size: tuple[int, int]  # (H, W) of the model input
    batch: tuple[int, int]  # (B, T)


class _ViTPyramid(nn.Module):
    """Single-scale ViT maps -> strides p/2, p, 2p (deconv / identity / maxpool, as the paper's STFT backbone)."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2)
        self.down = nn.MaxPool2d(kernel_size=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.up(x), x, self.down(x)]


class _FPN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_inputs: int = 3):
        super().__init__()
        self.inner = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(num_inputs))
        self.layer = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in range(num_inputs)
        )
        self.p6 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        last = self.inner[-1](feats[-1])
        outs = [self.layer[-1](last)]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inner[i](feats[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outs.insert(0, self.layer[i](last))
        p6 = self.p6(outs[-1])
        p7 = self.p7(F.relu(p6))
        return [*outs, p6, p7]


def _tower(channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(min(32, channels), channels),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers)


class DetectionHead(TaskHead):
    task = "detection"

    def __init__(
        self,
        embed_dim: int,
        classes: list[str],
        patch_size: int = 16,
        fpn_channels: int = 256,
        num_convs: int = 4,
        size_limits: tuple[float, ...] | list[float] = (64, 128, 256, 512),
        center_sampling_radius: float = 1.5,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.6,
        pre_nms_top_n: int = 1000,
        detections_per_img: int = 100,
        prior_prob: float = 0.01,
    ):
        super().__init__()
        self.classes = check_classes(classes, "DetectionHead")
        if fpn_channels % min(32, fpn_channels):
            raise ValueError(f"fpn_channels must be a multiple of 32 (GroupNorm), got {fpn_channels}")
        self.embed_dim = int(embed_dim)
        self.patch_size = int(patch_size)
        self.fpn_channels = int(fpn_channels)
        self.num_convs = int(num_convs)
        self.strides = [self.patch_size // 2, self.patch_size, self.patch_size * 2, self.patch_size * 4]
        self.strides.append(self.patch_size * 8)
        if len(size_limits) != len(self.strides) - 1:
            raise ValueError(f"size_limits needs {len(self.strides) - 1} boundaries, got {list(size_limits)}")
        self.size_limits = [float(s) for s in size_limits]
        self.center_sampling_radius = float(center_sampling_radius)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.detections_per_img = int(detections_per_img)
        self.prior_prob = float(prior_prob)

        self.pyramid = _ViTPyramid(self.embed_dim)
        self.fpn = _FPN(self.embed_dim, self.fpn_channels)
        self.cls_tower = _tower(self.fpn_channels, self.num_convs)
        self.bbox_tower = _tower(self.fpn_channels, self.num_convs)
        self.cls_logits = nn.Conv2d(self.fpn_channels, len(self.classes), 3, padding=1)
        self.bbox_pred = nn.Conv2d(self.fpn_channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(self.fpn_channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        for module in (self.cls_tower, self.bbox_tower, self.cls_logits, self.bbox_pred, self.centerness):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=0.01)
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - self.prior_prob) / self.prior_prob))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, feats: BackboneFeatures) -> DetectionOutput:
        levels = self.fpn(self.pyramid(feats.maps()))  # 5 x [B*T, C, h_l, w_l]
        cls, reg, ctr = [], [], []
        for i, p in enumerate(levels):
            c = self.cls_tower(p)
            r = self.bbox_tower(p)
            cls.append(self.cls_logits(c))
            reg.append(F.relu(self.bbox_pred(r) * self.scales[i]))
            ctr.append(self.centerness(r))
        return DetectionOutput(
            cls, reg, ctr, list(self.strides), tuple(feats.image_size), (feats.batch_size, feats.num_frames)
        )

    # ----------------------------------------------------------------------------------------------- geometry
    def _locations(self, out: DetectionOutput, device: torch.device):
        """Centres of every location over all levels: xy ``[L, 2]``, stride ``[L]``, size range ``[L, 2]``."""
        bounds = [-1.0, *self.size_limits, INF]
        xy, strides, ranges = [], [], []
        for lvl, (logits, stride) in enumerate(zip(out.cls, out.strides)):
            h, w = logits.shape[-2:]
            ys = torch.arange(h, device=device, dtype=torch.float32) * stride + stride // 2
            xs = torch.arange(w, device=device, dtype=torch.float32) * stride + stride // 2
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            xy.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
            strides.append(torch.full((h * w,), float(stride), device=device))
            ranges.append(torch.tensor([bounds[lvl], bounds[lvl + 1]], device=device).expand(h * w, 2))
        return torch.cat(xy), torch.cat(strides), torch.cat(ranges)

    @staticmethod
    def _flatten(out: DetectionOutput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # per level [N, X, h, w] -> [N, sum(h*w), X]
        cls = torch.cat([c.flatten(2).transpose(1, 2) for c in out.cls], dim=1).float()
        reg = torch.cat([r.flatten(2).transpose(1, 2) for r in out.reg], dim=1).float()
        ctr = torch.cat([c.flatten(2).transpose(1, 2) for c in out.ctr], dim=1).float().squeeze(2)
        return cls, reg, ctr

    def _assign(self, boxes, labels, xy, strides, ranges):
        """FCOS targets for one frame: labels ``[L]`` (``num_classes`` = background) and ltrb ``[L, 4]`` in px."""
        num_loc = xy.shape[0]
        if boxes.numel() == 0:
            return torch.full((num_loc,), self.num_classes, dtype=torch.long, device=xy.device), xy.new_zeros(
                num_loc, 4
            )
        x, y = xy[:, 0:1], xy[:, 1:2]  # [L, 1]
        x0, y0, x1, y1 = boxes.unbind(dim=1)  # [M]
        ltrb = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # [L, M, 4]
        # centre sampling: inside a box of radius stride * r around the gt centre (clipped to the gt box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rad = strides[:, None] * self.center_sampling_radius  # [L, 1]
        cb = torch.stack(
            [
                torch.maximum(cx - rad, x0),
                torch.maximum(cy - rad, y0),
                torch.minimum(cx + rad, x1),
                torch.minimum(cy + rad, y1),
            ],
            dim=2,
        )  # [L, M, 4]
        in_center = torch.stack([x - cb[..., 0], y - cb[..., 1], cb[..., 2] - x, cb[..., 3] - y], dim=2)
        in_center = in_center.min(dim=2).values > 0
        max_reg = ltrb.max(dim=2).values
        in_range = (max_reg >= ranges[:, 0:1]) & (max_reg <= ranges[:, 1:2])
        area = ((x1 - x0) * (y1 - y0))[None].expand(num_loc, -1).clone()  # [L, M]
        area[~(in_center & in_range)] = INF
        best_area, best = area.min(dim=1)
        target_labels = labels[best].clone()
        target_labels[best_area == INF] = self.num_classes
        target_ltrb = ltrb[torch.arange(num_loc, device=xy.device), best]
        return target_labels, target_ltrb

    # ----------------------------------------------------------------------------------------------- loss
    def loss(
        self, out: DetectionOutput, targets: list[dict[str, torch.Tensor] | None]
    ) -> dict[str, torch.Tensor]:
        cls, reg, ctr = self._flatten(out)  # [N, L, C], [N, L, 4], [N, L]
        n_frames = cls.shape[0]
        if len(targets) != n_frames:
            raise ValueError(
                f"detection targets: expected {n_frames} entries (B*T frames), got {len(targets)}"
            )
        device = cls.device
        xy, strides, ranges = self._locations(out, device)
        rows, lab_all, ltrb_all = [], [], []
        for i, tgt in enumerate(targets):
            if tgt is None:
                continue
            boxes = torch.as_tensor(tgt["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
            labels = torch.as_tensor(tgt["labels"], dtype=torch.long, device=device).reshape(-1)
            if boxes.shape[0] != labels.shape[0]:
                raise ValueError(f"detection target {i}: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"detection target {i}: labels must be in [0, {self.num_classes}), got {labels}"
                )
            lab, ltrb = self._assign(boxes, labels, xy, strides, ranges)
            rows.append(i)
            lab_all.append(lab)
            ltrb_all.append(ltrb / strides[:, None])
        zero = cls.sum() * 0.0 + reg.sum() * 0.0 + ctr.sum() * 0.0
        if not rows:
            return {"loss": zero, "loss_cls": zero, "loss_reg": zero, "loss_ctr": zero}
        idx = torch.tensor(rows, device=device)
        cls, reg, ctr = cls[idx].flatten(0, 1), reg[idx].flatten(0, 1), ctr[idx].flatten(0, 1)
        labels = torch.cat(lab_all)  # [R*L]
        ltrb_t = torch.cat(ltrb_all)  # [R*L, 4]
        pos = labels < self.num_classes
        num_pos = max(float(pos.sum()), 1.0)
        onehot = torch.zeros_like(cls)
        onehot[pos, labels[pos]] = 1.0
        loss_cls = sigmoid_focal_loss(cls, onehot, alpha=0.25, gamma=2.0, reduction="sum") / num_pos
        if not bool(pos.any()):
            return {"loss": loss_cls + zero, "loss_cls": loss_cls, "loss_reg": zero, "loss_ctr": zero}
        t = ltrb_t[pos]
        lr, tb = t[:, [0, 2]], t[:, [1, 3]]
        ctr_t = torch.sqrt(
            (lr.min(dim=1).values / lr.max(dim=1).values) * (tb.min(dim=1).values / tb.max(dim=1).values)
        )
        p = reg[pos]
        pred_boxes = torch.stack([-p[:, 0], -p[:, 1], p[:, 2], p[:, 3]], dim=1)
        tgt_boxes = torch.stack([-t[:, 0], -t[:, 1], t[:, 2], t[:, 3]], dim=1)
        giou = generalized_box_iou_loss(pred_boxes, tgt_boxes, reduction="none")
        loss_reg = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(ctr[pos], ctr_t, reduction="sum") / num_pos
        return {
            "loss": loss_cls + loss_reg + loss_ctr,
            "loss_cls": loss_cls,
            "loss_reg": loss_reg,
            "loss_ctr": loss_ctr,
        }

    # ----------------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, out: DetectionOutput) -> list[dict[str, torch.Tensor]]:
        """Boxes for every frame at once (no per-frame Python loop: one NMS call for the whole batch)."""
        cls, reg, ctr = self._flatten(out)  # [N, L, C], [N, L, 4], [N, L]
        n_frames, n_classes = cls.shape[0], cls.shape[2]
        device = cls.device
        xy, strides, _ = self._locations(out, device)
        level_of = torch.cat(
            [torch.full((c.shape[-2] * c.shape[-1],), i, device=device) for i, c in enumerate(out.cls)]
        )
        prob = torch.sigmoid(cls)
        frame, loc, label = torch.nonzero(prob > self.score_threshold, as_tuple=True)
        p = prob[frame, loc, label]
        # at most pre_nms_top_n candidates per frame and level, the most probable ones (FCOS)
        keep = _rank_within(frame * len(out.cls) + level_of[loc], p) < self.pre_nms_top_n
        frame, loc, label, p = frame[keep], loc[keep], label[keep], p[keep]
        scores = torch.sqrt(p * torch.sigmoid(ctr[frame, loc]))
        d = reg[frame, loc] * strides[loc, None]  # (l, t, r, b) in pixels
        c = xy[loc]
        boxes = torch.stack(
            [c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], dim=1
        )
        h, w = out.image_size
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        frame, label, boxes, scores = frame[valid], label[valid], boxes[valid], scores[valid]
        # class-wise NMS within each frame; the result is sorted by decreasing score
        keep = batched_nms(boxes, scores, frame * n_classes + label, self.nms_threshold)
        keep = keep[_rank_within(frame[keep], scores[keep]) < self.detections_per_img]
        keep = keep[torch.argsort(frame[keep], stable=True)]  # grouped by frame, score order kept
        counts = torch.bincount(frame[keep], minlength=n_frames).tolist()
        return [
            {"boxes": b, "scores": s_, "labels": lab}
            for b, s_, lab in zip(
                boxes[keep].split(counts), scores[keep].split(counts), label[keep].split(counts)
            )
        ]

    # ----------------------------------------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "fpn_channels": self.fpn_channels,
            "num_convs": self.num_convs,
            "size_limits": list(self.size_limits),
            "center_sampling_radius": self.center_sampling_radius,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "pre_nms_top_n": self.pre_nms_top_n,
            "detections_per_img": self.detections_per_img,
        }

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], embed_dim: int, patch_size: int = 16, depth: int = 12
    ) -> DetectionHead:
        kwargs = {k: cfg[k] for k in cls._CONFIG_KEYS if k in cfg}
        # FCOS's 256 FPN channels for the 768-wide ViT-B; narrower backbones get narrower towers (384 -> 128,
        # 192 -> 64), which keeps the head's cost below the backbone's on a CPU
        kwargs.setdefault("fpn_channels", min(256, max(64, (embed_dim // 3) // 32 * 32)))
        return cls(embed_dim, list(cfg.get("classes", [])), patch_size=patch_size, **kwargs)

    _CONFIG_KEYS = (
        "fpn_channels",
        "num_convs",
        "size_limits",
        "center_sampling_radius",
        "score_threshold",
        "nms_threshold",
        "pre_nms_top_n",
        "detections_per_img",
    )


def _rank_within(group: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """For each element, its rank by decreasing ``score`` among the elements of its ``group`` (0 = best)."""
    if group.numel() == 0:
        return group.clone()
    order = torch.argsort(score, descending=True)
    order = order[torch.argsort(group[order], stable=True)]  # by group, then by decreasing score
    _, counts = torch.unique_consecutive(group[order], return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - starts
    return rank
