"""The tiny, randomly initialised Endo-FM task model the predictor tests run: ``endofm_tiny`` on 64 px, 4-frame clips
with all three heads, small enough for a CPU test."""

from __future__ import annotations

from pathlib import Path

import torch

from core_model.checkpoint import ModelMeta
from core_model.heads import (
    ClassificationHead,
    DetectionHead,
    EndoFMTaskModel,
    SegmentationHead,
    save_task_model,
)
from core_model.models import create_model

SIZE, T = 64, 4
TASKS = ("classification", "segmentation", "detection")


def tiny_task_model(tasks: tuple[str, ...] = TASKS, seed: int = 0) -> EndoFMTaskModel:
    torch.manual_seed(seed)
    bb = create_model("endofm_tiny", img_size=SIZE, num_frames=T)
    heads = {
        "classification": ClassificationHead(192, ["normal", "abnormal"]),
        "segmentation": SegmentationHead.from_config(
            {"classes": ["polyp"], "decoder_channels": [32, 32, 16, 16]}, 192, 16, 6
        ),
        "detection": DetectionHead(192, ["polyp"], fpn_channels=32, num_convs=1),
    }
    return EndoFMTaskModel(bb, {t: heads[t] for t in tasks})


def save_tiny_task_model(d: Path) -> Path:
    """A model directory (weights + ``model.json``, frame stride 1, clip stride 2) of :func:`tiny_task_model`."""
    model = tiny_task_model()
    meta = ModelMeta.for_config(
        model.backbone.cfg, "endofm_tiny", preprocess={"frame_stride": 1, "clip_stride": 2}
    )
    save_task_model(d, model, meta)
    return d
