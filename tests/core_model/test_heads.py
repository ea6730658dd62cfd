"""Task heads: shapes and token order, the paper's losses, FCOS target assignment and decoding, and that every head
trains (loss falls on a tiny overfit batch) and predicts the right thing on top of a real ``endofm_tiny``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core_model.heads import (
    BackboneFeatures,
    ClassificationHead,
    DetectionHead,
    DetectionOutput,
    EndoFMTaskModel,
    SegmentationHead,
    evenly_spaced_blocks,
    frame_maps,
    segmentation_loss,
)
from core_model.models import create_model

D = 192  # endofm_tiny width
SIZE, T = 64, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_backbone(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model("endofm_tiny", img_size=SIZE, num_frames=T, drop_path_rate=0.0, **overrides)


def small_heads(depth: int = 6) -> dict:
    return {
        "classification": ClassificationHead(D, ["normal", "abnormal"]),
        "segmentation": SegmentationHead.from_config(
            {"classes": ["polyp"], "decoder_channels": [64, 32, 16, 16]}, D, patch_size=16, depth=depth
        ),
        "detection": DetectionHead(D, ["polyp"], fpn_channels=64, num_convs=2),
    }


# ------------------------------------------------------------------------------------------------ features
def test_frame_maps_follow_the_official_h_w_t_token_order():
    b, t, hp, wp = 2, 3, 4, 5
    tokens = torch.zeros(b, 1 + hp * wp * t, 1)
    for bi in range(b):
        for h in range(hp):
            for w in range(wp):
                for ti in range(t):
                    tokens[bi, 1 + (h * wp + w) * t + ti, 0] = bi * 1000 + h * 100 + w * 10 + ti
    maps = frame_maps(tokens, t, (hp, wp))
    assert maps.shape == (b * t, 1, hp, wp)
    assert maps[1 * t + 2, 0, 3, 4] == 1000 + 300 + 40 + 2  # row b*T + t, then (h, w)


def test_features_refuse_tokens_that_do_not_match_the_grid():
    with pytest.raises(ValueError, match="expected \\[B, 17, D\\]"):
        BackboneFeatures(
            tokens=torch.zeros(1, 20, 8), num_frames=1, grid=(4, 4), image_size=(64, 64), patch_size=16
        )


def test_evenly_spaced_blocks_end_at_the_last_block():
    assert evenly_spaced_blocks(12, 4) == [2, 5, 8, 11]
    assert evenly_spaced_blocks(6, 4)[-1] == 5 and len(evenly_spaced_blocks(6, 4)) == 4
    assert evenly_spaced_blocks(2, 4) == [0, 1]


# ------------------------------------------------------------------------------------------------ classification
def _feats(b=2, t=2, grid=(2, 2), d=D, size=(32, 32)):
    tokens = torch.randn(b, 1 + grid[0] * grid[1] * t, d)
    return BackboneFeatures(tokens=tokens, num_frames=t, grid=grid, image_size=size, patch_size=16)


def test_classification_is_linear_on_the_cls_with_paper_init_and_ce():
    head = ClassificationHead(D, ["normal", "abnormal"])
    assert head.linear.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert torch.count_nonzero(head.linear.bias) == 0
    feats = _feats()
    logits = head(feats)
    assert torch.allclose(logits, feats.tokens[:, 0] @ head.linear.weight.T + head.linear.bias)
    probs = head.predict(logits)
    assert torch.allclose(probs.sum(1), torch.ones(2))
    target = torch.tensor([1, 0])
    assert head.loss(logits, target)["loss"].item() == pytest.approx(F.cross_entropy(logits, target).item())
    # an unlabelled clip (-100) is ignored
    only_first = head.loss(logits, torch.tensor([1, -100]))["loss"].item()
    assert only_first == pytest.approx(F.cross_entropy(logits[:1], target[:1]).item(), rel=1e-5)


def test_multi_label_classification_uses_independent_sigmoids():
    head = ClassificationHead(D, ["polyp", "bleeding", "ulcer"], multi_label=True)
    logits = head(_feats())
    probs = head.predict(logits)
    assert torch.allclose(probs, torch.sigmoid(logits))
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected = F.binary_cross_entropy_with_logits(logits, target)
    assert head.loss(logits, target)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="multi-label targets"):
        head.loss(logits, torch.tensor([1, 0]))


def test_heads_refuse_bad_class_lists():
    with pytest.raises(ValueError, match="non-empty list"):
        ClassificationHead(D, [])
    with pytest.raises(ValueError, match="duplicate"):
        DetectionHead(D, ["polyp", "polyp"])


# ------------------------------------------------------------------------------------------------ segmentation loss
def test_segmentation_loss_is_half_ce_half_soft_dice_over_all_classes():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 2, 4, 4)
    target = torch.randint(0, 2, (1, 2, 4, 4))
    out = segmentation_loss(logits, target)
    flat, tgt = logits.flatten(0, 1), target.flatten(0, 1)
    ce = F.cross_entropy(flat, tgt)
    p = torch.softmax(flat, 1)
    dice = []
    for k in range(2):
        g = (tgt == k).float()
        dice.append(1 - (2 * (p[:, k] * g).sum() + 1e-5) / ((p[:, k] ** 2).sum() + (g**2).sum() + 1e-5))
    assert out["loss_ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(torch.stack(dice).mean().item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * ce.item() + 0.5 * out["loss_dice"].item(), rel=1e-5)


def test_segmentation_loss_ignores_unlabelled_frames():
    logits = torch.zeros(1, 2, 2, 4, 4)
    logits[0, 0, 1] = 10.0  # frame 0 predicts foreground everywhere
    target = torch.ones(1, 2, 4, 4, dtype=torch.long)
    target[0, 1] = -100  # frame 1 unlabelled: whatever it predicts must not count
    assert segmentation_loss(logits, target)["loss"].item() < 0.01
    assert segmentation_loss(logits, torch.full_like(target, -100))["loss"].item() == 0.0


# ------------------------------------------------------------------------------------------------ detection
def _det_head(**kw):
    return DetectionHead(D, ["polyp", "adenoma"], fpn_channels=32, num_convs=1, **kw)


def _fake_output(head: DetectionHead, size=64, frames=1) -> DetectionOutput:
    """Logits shaped as the pyramid a 64-px input gives (stride 8..128), all 'no object'."""
    levels = []
    for s in head.strides:
        n = max(1, math.ceil(size / s))
        levels.append(n)
    cls = [torch.full((frames, head.num_classes, n, n), -10.0) for n in levels]
    reg = [torch.ones(frames, 4, n, n) for n in levels]
    ctr = [torch.zeros(frames, 1, n, n) for n in levels]
    return DetectionOutput(cls, reg, ctr, list(head.strides), (size, size), (1, frames))


def test_fcos_assigns_small_boxes_to_p3_with_centre_sampling():
    head = _det_head()
    out = _fake_output(head)
    xy, strides, ranges = head._locations(out, torch.device("cpu"))
    box = torch.tensor([[16.0, 16.0, 48.0, 40.0]])
    labels, ltrb = head._assign(box, torch.tensor([1]), xy, strides, ranges)
    pos = labels < head.num_classes
    assert pos.any()
    assert torch.all(labels[pos] == 1)
    assert torch.all(strides[pos] == 8)  # a 32-px box belongs to P3 (sizes up to 64)
    # centre sampling: positives lie within 1.5 strides of the box centre (32, 28)
    assert torch.all((xy[pos, 0] - 32).abs() < 12) and torch.all((xy[pos, 1] - 28).abs() < 12)
    # regression targets are distances to the box sides
    assert torch.allclose(ltrb[pos][:, 0], xy[pos, 0] - 16) and torch.allclose(
        ltrb[pos][:, 3], 40 - xy[pos, 1]
    )
    empty_labels, _ = head._assign(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), xy, strides, ranges)
    assert torch.all(empty_labels == head.num_classes)


def test_fcos_loss_handles_empty_and_unlabelled_frames():
    head = _det_head()
    out = _fake_output(head, frames=3)
    for level in out.cls + out.reg + out.ctr:
        level.requires_grad_(True)
    targets = [
        {"boxes": torch.tensor([[16.0, 16.0, 48.0, 40.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},  # reviewed, no polyp
        None,  # not labelled
    ]
    losses = head.loss(out, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    # the unlabelled frame gets no gradient; the negative frame does (its scores are pushed down)
    assert out.cls[0].grad[2].abs().sum() == 0
    assert out.cls[0].grad[1].abs().sum() > 0
    nothing = head.loss(_fake_output(head), [None])
    assert nothing["loss"].item() == 0.0
    with pytest.raises(ValueError, match="expected 1 entries"):
        head.loss(_fake_output(head), targets)


def test_fcos_decodes_boxes_in_input_pixels_and_applies_nms():
    head = _det_head()
    out = _fake_output(head)
    # P3 (stride 8), location (row 3, col 4) -> centre (36, 28); two neighbours predict nearly the same box
    for r, c, score in ((3, 4, 8.0), (3, 5, 6.0)):
        out.cls[0][0, 1, r, c] = score
        cx, cy = c * 8 + 4, r * 8 + 4
        out.reg[0][0, :, r, c] = torch.tensor([cx - 20, cy - 12, 52 - cx, 44 - cy]) / 8.0
        out.ctr[0][0, 0, r, c] = 10.0
    [pred] = head.predict(out)
    assert pred["boxes"].shape == (1, 4)  # the duplicate was suppressed
    assert torch.allclose(pred["boxes"][0], torch.tensor([20.0, 12.0, 52.0, 44.0]), atol=1e-4)
    assert pred["labels"].tolist() == [1]
    assert pred["scores"][0].item() == pytest.approx(
        math.sqrt(torch.sigmoid(torch.tensor(8.0)).item()), rel=1e-3
    )


# ------------------------------------------------------------------------------------------------ with the backbone
def test_task_model_runs_the_backbone_once_for_all_heads():
    backbone = tiny_backbone()
    model = EndoFMTaskModel(backbone, small_heads()).eval()
    calls = []
    backbone.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, T, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
    assert len(calls) == 1
    assert out["classification"].shape == (2, 2)
    assert out["segmentation"].shape == (2, T, 2, SIZE, SIZE)  # full input resolution, background + polyp
    assert len(out["detection"].cls) == 5
    # the classifier reads exactly the backbone's own final-norm CLS
    with torch.no_grad():
        cls = backbone(x)
        expected = model.heads["classification"].linear(cls)
    assert torch.allclose(out["classification"], expected, atol=1e-5)


def test_segmentation_is_full_resolution_for_sizes_not_multiple_of_the_patch():
    model = EndoFMTaskModel(tiny_backbone(), {"segmentation": small_heads()["segmentation"]}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 2, 72, 88))
    assert out["segmentation"].shape == (1, 2, 2, 72, 88)


def test_task_model_refuses_a_head_under_the_wrong_task():
    with pytest.raises(ValueError, match="task 'detection'"):
        EndoFMTaskModel(tiny_backbone(), {"segmentation": _det_head()})


def _overfit_batch():
    """Two clips: a bright square 'polyp' (abnormal) in clip 1, nothing in clip 0."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, T, SIZE, SIZE, generator=g) * 0.3
    seg = torch.zeros(2, T, SIZE, SIZE, dtype=torch.long)
    box = [20.0, 16.0, 44.0, 40.0]
    x[1, :, :, 16:40, 20:44] += 2.0
    seg[1, :, 16:40, 20:44] = 1
    det = []
    for b in range(2):
        for _ in range(T):
            if b == 1:
                det.append({"boxes": torch.tensor([box]), "labels": torch.tensor([0])})
            else:
                det.append({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)})
    return x, {"classification": torch.tensor([0, 1]), "segmentation": seg, "detection": det}, box


def test_all_three_heads_train_and_then_predict_what_they_were_shown():
    model = EndoFMTaskModel(tiny_backbone(), small_heads())
    x, targets, box = _overfit_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    history = []
    model.train()
    for _ in range(25):
        losses = model.losses(model(x), targets)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    for task in ("classification", "segmentation", "detection"):
        first, last = history[0][f"{task}/loss"], history[-1][f"{task}/loss"]
        assert last < 0.6 * first, f"{task} loss {first:.3f} -> {last:.3f}"
    model.eval()
    pred = model.predict(x)
    assert pred["classification"].argmax(1).tolist() == [0, 1]
    mask = pred["segmentation"].argmax(2)  # [B, T, H, W]
    gt = targets["segmentation"].bool()
    inter = (mask.bool() & gt).sum().item()
    union = (mask.bool() | gt).sum().item()
    assert inter / union > 0.6
    frame = pred["detection"][T]  # clip 1, frame 0
    assert frame["scores"].numel() > 0
    top = frame["boxes"][0]
    ix = max(0.0, min(top[2], box[2]) - max(top[0], box[0])) * max(
        0.0, min(top[3], box[3]) - max(top[1], box[1])
    )
    area = (top[2] - top[0]) * (top[3] - top[1]) + (box[2] - box[0]) * (box[3] - box[1])
    assert ix / (area - ix) > 0.5
    # the empty clip's best box is weaker than the polyp's
    empty_best = (
        pred["detection"][0]["scores"].max().item() if pred["detection"][0]["scores"].numel() else 0.0
    )
    assert empty_best < frame["scores"][0].item()


def _reference_predict(head: DetectionHead, out: DetectionOutput) -> list[dict[str, torch.Tensor]]:
    """FCOS post-processing written the straightforward way: frame by frame, level by level."""
    from torchvision.ops import batched_nms

    cls, reg, ctr = head._flatten(out)
    xy, strides, _ = head._locations(out, cls.device)
    sizes = [c.shape[-2] * c.shape[-1] for c in out.cls]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    h, w = out.image_size
    results = []
    for n in range(cls.shape[0]):
        boxes, scores, labels = [], [], []
        for start, size in zip(starts, sizes):
            prob = torch.sigmoid(cls[n, start : start + size])
            loc, lab = torch.nonzero(prob > head.score_threshold, as_tuple=True)
            s = prob[loc, lab]
            if s.numel() > head.pre_nms_top_n:
                s, top = s.topk(head.pre_nms_top_n)
                loc, lab = loc[top], lab[top]
            g = loc + start
            d = reg[n, g] * strides[g, None]
            b = torch.stack(
                [xy[g, 0] - d[:, 0], xy[g, 1] - d[:, 1], xy[g, 0] + d[:, 2], xy[g, 1] + d[:, 3]], 1
            )
            boxes.append(b)
            scores.append(torch.sqrt(s * torch.sigmoid(ctr[n, g])))
            labels.append(lab)
        b, s, lab = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        b[:, 0::2] = b[:, 0::2].clamp(0, w)
        b[:, 1::2] = b[:, 1::2].clamp(0, h)
        ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        b, s, lab = b[ok], s[ok], lab[ok]
        keep = batched_nms(b, s, lab, head.nms_threshold)[: head.detections_per_img]
        results.append({"boxes": b[keep], "scores": s[keep], "labels": lab[keep]})
    return results


def test_batched_fcos_postprocessing_matches_the_frame_by_frame_reference():
    torch.manual_seed(3)
    head = _det_head(score_threshold=0.3, pre_nms_top_n=7, detections_per_img=5, nms_threshold=0.5)
    out = _fake_output(head, frames=4)
    for lvl in range(len(out.cls)):
        out.cls[lvl].normal_(0, 1.5)
        out.reg[lvl].uniform_(0, 3)
        out.ctr[lvl].normal_()
    for level in out.cls:
        level[2] = -10.0  # a frame with no candidate at all
    fast, slow = head.predict(out), _reference_predict(head, out)
    assert (
        len(fast) == 4
        and fast[2]["boxes"].shape == (0, 4)
        and slow[2]["boxes"].shape[0] == fast[2]["boxes"].shape[0]
    )
    for a, b in zip(fast, slow):
        assert a["boxes"].shape[0] <= 5
        assert torch.equal(a["labels"], b["labels"])
        assert torch.allclose(a["scores"], b["scores"]) and torch.allclose(a["boxes"], b["boxes"])
