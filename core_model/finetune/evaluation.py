"""Evaluate a model directory on a split of a training manifest (``endofm evaluate``, the registry's compare).

The clips are sampled as the model was trained (its saved ``num_frames`` / ``img_size`` / ``frame_stride`` /
mean / std); labels are matched to the model's heads by class name (labels the model does not know are left out).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core_model import runtime
from core_model.finetune.config import FinetuneConfig
from core_model.finetune.data import ClipDataset, build_sequences, check_files
from core_model.finetune.engine import EvalResult, evaluate
from core_model.finetune.modeling import load_task_model_dir


def evaluate_model_dir(
    model_dir: str | Path,
    manifest_path: str | Path,
    split: str = "test",
    tasks: tuple[str, ...] | None = None,
    device: str | None = None,
    batch_size: int = 2,
    score_thr: float = 0.5,
    on_step: Callable[[int, int], None] | None = None,
) -> EvalResult:
    from core_model.data.manifest import load_manifest

    model, meta = load_task_model_dir(model_dir)
    manifest = load_manifest(manifest_path)
    have = list(model.heads)
    tasks = tuple(t for t in (tasks or have) if t in have)
    if not tasks:
        raise ValueError(f"{model_dir}: has heads {have}, none of the requested tasks")
    pre = meta.preprocess
    cfg = FinetuneConfig(
        manifest=str(manifest_path),
        tasks=tasks,
        num_frames=int(pre["num_frames"]),
        img_size=int(pre["img_size"] if isinstance(pre["img_size"], int) else pre["img_size"][0]),
        frame_stride=int(pre["frame_stride"]),
        mean=tuple(pre["mean"]),
        std=tuple(pre["std"]),
    )
    classes: dict[str, tuple[str, ...]] = {}
    if "classification" in tasks:
        classes["video"] = tuple(model.heads["classification"].classes)
    if "segmentation" in tasks:
        classes["mask"] = tuple(model.heads["segmentation"].classes)
    if "detection" in tasks:
        classes["box"] = tuple(model.heads["detection"].classes)
    by_split = build_sequences(manifest)
    seqs = [q for qs in by_split.values() for q in qs] if split == "all" else by_split.get(split, [])
    if not seqs:
        raise ValueError(f"{manifest_path}: no video in split {split!r}")
    check_files(seqs)
    ds = ClipDataset(seqs, cfg, classes, train=False)
    dev = runtime.pick_device(device)
    model.to(dev)
    try:
        return evaluate(
            model,
            ds,
            dev,
            lambda: runtime.autocast(dev),
            batch_size=batch_size,
            score_thr=score_thr,
            on_step=on_step,
        )
    finally:
        ds.cache.close()
