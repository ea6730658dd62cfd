"""``train_one_epoch`` and ``evaluate`` (the mae ``engine_finetune.py`` split): no files, no printing.

``evaluate`` runs the deterministic evaluation clips of a ``ClipDataset`` and computes, per task, the paper's
metrics (``core_model.finetune.metrics``) at model-input resolution, plus a per-frame table that the registry uses
to show the frames where two model versions disagree.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core_model.finetune import metrics as M
from core_model.finetune.augment import IGNORE
from core_model.finetune.data import ClipDataset, collate
from core_model.finetune.schedules import apply_lr

log = logging.getLogger(__name__)


def make_targets(batch: dict, tasks: tuple[str, ...], device: torch.device) -> dict[str, Any]:
    """The heads' target formats from a collated batch."""
    tg: dict[str, Any] = {}
    if "classification" in tasks:
        tg["classification"] = batch["label"].to(device)
    if "segmentation" in tasks:
        tg["segmentation"] = batch["masks"].to(device)
    if "detection" in tasks:
        entries = []
        for b, (boxes, labels) in enumerate(zip(batch["boxes"], batch["box_labels"])):
            for t in range(len(boxes)):
                if not bool(batch["box_valid"][b, t]):
                    entries.append(None)
                else:
                    entries.append({"boxes": boxes[t].to(device), "labels": labels[t].to(device)})
        tg["detection"] = entries
    return tg


@dataclass
class StepStats:
    loss: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    clips: int = 0
    seconds: float = 0.0
    stopped: bool = False  # ended before the last step (``should_stop``)

    def add(self, losses: dict[str, torch.Tensor], clips: int) -> None:
        self.steps += 1
        self.clips += clips
        self.loss += float(losses["loss"].detach())
        for k, v in losses.items():
            if k != "loss":
                self.parts[k] = self.parts.get(k, 0.0) + float(v.detach())

    def summary(self) -> dict[str, float]:
        n = max(self.steps, 1)
        out = {"loss": self.loss / n, "clips_per_s": self.clips / max(self.seconds, 1e-9)}
        out.update({k: v / n for k, v in self.parts.items()})
        return out


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    lr_schedule: np.ndarray,
    start_iter: int,
    device: torch.device,
    tasks: tuple[str, ...],
    autocast: Callable[[], Any],
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    max_steps: int = 0,
    on_step: Callable[[int, int, float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StepStats:
    """One pass over ``loader``. ``lr_schedule[start_iter + i]`` is applied before step i. ``on_step(i, n, loss,
    lr)`` is called after every step (progress events). ``should_stop()`` is asked before every step: True ends
    the pass there (``StepStats.stopped``; the run's time budget). A non-finite loss stops the run with a clear
    error."""
    model.train()
    stats = StepStats()
    n = len(loader) if not max_steps else min(len(loader), max_steps)
    t0 = time.perf_counter()
    for i, batch in enumerate(loader):
        if max_steps and i >= max_steps:
            break
        if should_stop is not None and should_stop():
            stats.stopped = True
            break
        it = min(start_iter + i, len(lr_schedule) - 1)
        lr = float(lr_schedule[it])
        apply_lr(optimizer, lr)
        x = batch["clip"].to(device, non_blocking=True)
        targets = make_targets(batch, tasks, device)
        with autocast():
            out = model(x)
        losses = model.losses(out, targets)
        loss = losses["loss"]
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"loss is {float(loss)} at step {i} (parts: {_fmt(losses)}); stopping")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(_trainable(model), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(_trainable(model), grad_clip)
            optimizer.step()
        stats.add(losses, x.shape[0])
        stats.seconds = time.perf_counter() - t0
        if on_step is not None:
            on_step(i, n, float(loss.detach()), lr)
    return stats


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _fmt(losses: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())


@dataclass
class EvalResult:
    metrics: dict[str, float]
    frames: dict[str, dict[int, dict[str, Any]]]  # sequence name -> frame -> per-frame outcome

    def to_json(self) -> dict:
        return {
            "metrics": self.metrics,
            "frames": {s: {str(f): v for f, v in fr.items()} for s, fr in self.frames.items()},
        }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: ClipDataset,
    device: torch.device,
    autocast: Callable[[], Any],
    batch_size: int = 2,
    score_thr: float = 0.5,
    on_step: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Metrics over ``dataset`` (built with ``train=False``) for every task of the model that has labels."""
    model.eval()
    tasks = dataset.tasks
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    n_seq = len(dataset.seqs)
    cls_probs: list[list[np.ndarray]] = [[] for _ in range(n_seq)]
    seg_pred: list[dict[int, np.ndarray]] = [{} for _ in range(n_seq)]
    seg_gt: list[dict[int, np.ndarray]] = [{} for _ in range(n_seq)]
    det: list[dict[int, M.FrameDetections]] = [{} for _ in range(n_seq)]
    heads = getattr(model, "heads", {})
    for step, batch in enumerate(loader):
        x = batch["clip"].to(device)
        with autocast():
            out = model(x)
        b, t = x.shape[0], x.shape[2]
        if "classification" in tasks:
            p = heads["classification"].predict(out["classification"]).float().cpu().numpy()
            for j in range(b):
                cls_probs[batch["seq"][j]].append(p[j])
        if "segmentation" in tasks:
            probs = heads["segmentation"].predict(out["segmentation"])  # [B, T, K, H, W]
            pred = probs.argmax(dim=2).cpu().numpy().astype(np.int16)
            gt = batch["masks"].numpy()
            for j in range(b):
                for k in range(t):
                    f = int(batch["frames"][j, k])
                    s = batch["seq"][j]
                    if f not in seg_pred[s]:
                        seg_pred[s][f] = pred[j, k]
                        seg_gt[s][f] = gt[j, k]
        if "detection" in tasks:
            names = heads["detection"].classes
            preds = heads["detection"].predict(out["detection"])
            for j in range(b):
                for k in range(t):
                    f = int(batch["frames"][j, k])
                    s = batch["seq"][j]
                    if f in det[s] or not bool(batch["box_valid"][j, k]):
                        continue
                    pr = preds[j * t + k]
                    gtb = batch["boxes"][j][k].tolist()
                    gtl = batch["box_labels"][j][k].tolist()
                    gti = batch["track_ids"][j][k].tolist()
                    det[s][f] = M.FrameDetections(
                        gt=[(int(i), names[int(lab)], bb) for i, lab, bb in zip(gti, gtl, gtb)],
                        pred=[
                            (names[int(lab)], float(sc), bb)
                            for lab, sc, bb in zip(
                                pr["labels"].tolist(), pr["scores"].tolist(), pr["boxes"].tolist()
                            )
                        ],
                    )
        if on_step is not None:
            on_step(step, len(loader))
    return _score(dataset, tasks, cls_probs, seg_pred, seg_gt, det, score_thr)


def _score(dataset, tasks, cls_probs, seg_pred, seg_gt, det, score_thr) -> EvalResult:
    parts: dict[str, dict[str, float]] = {}
    frames: dict[str, dict[int, dict[str, Any]]] = {s.name: {} for s in dataset.seqs}
    if "classification" in tasks:
        t_, p_ = [], []
        for i, seq in enumerate(dataset.seqs):
            target = dataset.labels[i].video_target
            if target == IGNORE or not cls_probs[i]:
                continue
            prob = np.mean(cls_probs[i], axis=0)
            t_.append(target)
            p_.append(int(np.argmax(prob)))
            frames[seq.name][-1] = {"video_prob": prob.round(4).tolist(), "video_pred": int(np.argmax(prob))}
        classes = list(dataset.classes.get("video", ()))
        parts["classification"] = M.classification_metrics(t_, p_, classes)
    if "segmentation" in tasks:
        seqs = []
        for i, seq in enumerate(dataset.seqs):
            fr = sorted(f for f in seg_gt[i] if not np.all(seg_gt[i][f] == IGNORE))
            if not fr:
                continue
            pred = np.stack([seg_pred[i][f] > 0 for f in fr])
            gt = np.stack([seg_gt[i][f] > 0 for f in fr])
            seqs.append((pred, gt))
            for k, f in enumerate(fr):
                d = frames[seq.name].setdefault(f, {})
                d["mask_pixels"] = int(pred[k].sum())
                d["dice"] = round(M.dice(pred[k], gt[k], "strict"), 4)
        parts["segmentation"] = M.segmentation_metrics(seqs)
    if "detection" in tasks:
        all_frames: list[M.FrameDetections] = []
        lesions: list[M.LesionResult] = []
        for i, seq in enumerate(dataset.seqs):
            fr = sorted(det[i])
            all_frames.extend(det[i][f] for f in fr)
            for f in fr:
                best = max((s for _, s, _ in det[i][f].pred), default=0.0)
                frames[seq.name].setdefault(f, {})["det_score"] = round(float(best), 4)
                frames[seq.name][f]["det_hit"] = bool(best >= score_thr)
            lesions.extend(
                M.lesion_results(
                    seq.name, [det[i][f] for f in fr], fps=seq.video.fps, score_thr=score_thr, frame_ids=fr
                )
            )
        d = M.frame_detection_scores(all_frames, score_thr)
        d.update(M.box_ap(all_frames))
        d.update(M.lesion_metrics(lesions))
        parts["detection"] = d
    return EvalResult(M.merge_prefixed(parts), frames)
