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


def finetune_config_for(data, manifest: str, tasks: tuple[str, ...]) -> FinetuneConfig:
    """The evaluation pipeline's settings for a model's recorded data config (``core_model.contract.DataConfig``):
    the same frames, sampling rule, size, resize/crop and normalisation the model is served with."""
    from core_model.finetune.augment import AugmentConfig

    return FinetuneConfig(
        manifest=manifest,
        tasks=tasks,
        num_frames=data.num_frames,
        img_size=data.img_size[0],
        frame_stride=data.frame_stride,
        window="linspace" if data.sampling == "span" else "stride",
        window_s=data.span_s,
        mean=tuple(data.mean),
        std=tuple(data.std),
        augment=AugmentConfig(
            size=data.img_size[0],
            eval_crop="short_side_corner" if data.resize == "short_side_corner" else "resize",
        ),
    )


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
    cfg = finetune_config_for(meta.data, str(manifest_path), tasks)
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
