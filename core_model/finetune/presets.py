"""Recipes: sensible defaults per task, and the Endo-FM paper's protocols for users who have the datasets
(reference §4-§5), run with this project's heads.

``get_preset(name, tasks)`` -> ``FinetuneConfig`` overrides. Names:

* ``default``: our recipe for local fine-tuning (AdamW, layer-wise lr decay 0.75, 1-epoch warm-up, cosine to 1e-6,
  random-resized-crop + flip + colour jitter, early stopping on the validation metric).
* ``polypdiag``: reference §4.2/§5.1 - 8 frames spread (linspace) over a 256-frame window (8.5 s at 30 fps), random
  window in training and the first window at test; short side to U[256, 320] + random 224 crop + flip; test: short
  side 224 and the **left/top** crop; mean/std 0.45/0.225; SGD momentum 0.9, weight decay 0, lr 1.5625e-5
  (0.001 * 4 / 256) for batch 4, cosine per epoch, no warm-up, 20 epochs, no layer decay; binary F1 of "abnormal";
  the best validation epoch is exported (val.txt is the paper's test set).
* ``cvc12k-official`` / ``cvc12k-leakfree``: reference §4.3/§5.2 - 224 px, mean/std 0.5/0.5, AdamW lr 1e-4 weight
  decay 0.05, poly decay 0.9 per iteration, 150 epochs, batch 1 sequence, seed 9041; Dice per sequence with the
  TransUNet empty rules. The official split's test sequences overlap training (7 of 9) and the paper picks the
  best epoch on test; ``cvc12k-leakfree`` trains only on the 13 train sequences that are not test sequences and
  exports the last epoch (no selection on test). Differences kept on purpose: our augmentation is per clip (the
  paper's per frame, with +-5 degree rotation); RGB order (the paper feeds BGR after per-image min-max).
* ``kumc``: reference §4.4/§5.3 - 640x640 resize, flip 0.5, no colour jitter, clips of 3 frames, SGD momentum 0.9,
  lr 0.0025, weight decay 1e-4, 12 epochs, warm-up from 1/3 over the first (8.3 % of the run) then x0.5 at 2/3, 5/6 and 11/12 of it
  (8k / 64k, 80k, 88k of 96k iterations), batch 1; frame-level F1 at score 0.5 plus AP50. Caffe means
  (102.98, 115.95, 122.77)/255 with std 1/255 are used in RGB order (STFT feeds BGR).

CVC-ClinicDB is expected as one 612-frame image-sequence video (``Original/1.tif ... 612.tif``); the sequence
lists are the paper's hard-coded (1-based start, length) pairs, turned into 0-based ``[start, end)`` ranges.
"""

from __future__ import annotations

from typing import Any

from core_model.contract import ENDOFM_MEAN, ENDOFM_STD
from core_model.finetune.augment import AugmentConfig

# (1-based start, length) - TransUNet's hard-coded CVC-ClinicDB lists (reference §4.3)
CVC_TRAIN = [
    (104, 23), (529, 18), (448, 19), (26, 25), (343, 21), (178, 22), (429, 19), (200, 6), (127, 25), (253, 25),
    (364, 20), (592, 21), (228, 25), (68, 11), (467, 12), (206, 22), (79, 25), (479, 25), (51, 17), (572, 20),
]  # fmt: skip
CVC_TEST = [(51, 17), (318, 25), (429, 19), (1, 25), (178, 22), (253, 25), (343, 21), (68, 11), (200, 6)]


def cvc_sequences(kind: str) -> dict[str, list[tuple[int, int]]]:
    """``{"train": [(start0, end0)], "test": [...]}`` as 0-based ``[start, end)`` frame ranges."""

    def ranges(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(s - 1, s - 1 + n) for s, n in pairs]

    test = ranges(CVC_TEST)
    if kind == "cvc12k-official":
        return {"train": ranges(CVC_TRAIN), "test": test}
    if kind == "cvc12k-leakfree":
        return {"train": [r for r in ranges(CVC_TRAIN) if r not in test], "test": test}
    raise ValueError(f"unknown sequence split {kind!r} (cvc12k-official | cvc12k-leakfree)")


def _default(tasks: tuple[str, ...]) -> dict[str, Any]:
    return {}


def _polypdiag(tasks: tuple[str, ...]) -> dict[str, Any]:
    return {
        "tasks": ("classification",),
        "num_frames": 8,
        "img_size": 224,
        "window": "linspace",
        "window_s": 32 * 8 / 30,
        "clips_per_video": 1,
        "mean": ENDOFM_MEAN,
        "std": ENDOFM_STD,
        "augment": AugmentConfig(
            size=224,
            crop="scale_jitter",
            short_side=(256, 320),
            hflip=0.5,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            eval_crop="short_side_corner",
        ),
        "epochs": 20,
        "batch_size": 4,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "lr": 0.001 * 4 / 256,
        "min_lr": 0.0,
        "warmup_epochs": 0.0,
        "schedule": "cosine_epoch",
        "layer_decay": 1.0,
        "drop_path": 0.1,
        "monitor": "classification/f1",
        "select_best": True,
        "val_split": "val",
        "test_split": "val",
    }


def _cvc(kind: str) -> dict[str, Any]:
    return {
        "tasks": ("segmentation",),
        "img_size": 224,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "augment": AugmentConfig(
            size=224,
            scale=(0.766, 0.766),
            ratio=(1.0, 1.0),
            hflip=0.5,
            brightness=0,
            contrast=0,
            saturation=0,
        ),  # resize 256 + random 224 crop = a random square covering (224/256)^2 of the frame
        "sequences": kind,
        "clips_per_video": 1,
        "epochs": 150,
        "batch_size": 1,
        "optimizer": "adamw",
        "lr": 1e-4,
        "weight_decay": 0.05,
        "schedule": "poly",
        "warmup_epochs": 0.0,
        "layer_decay": 1.0,
        "seed": 9041,
        "monitor": "segmentation/dice_seq",
        "select_best": kind == "cvc12k-official",
        "val_split": "test" if kind == "cvc12k-official" else "",
        "test_split": "test",
    }


def _kumc(tasks: tuple[str, ...]) -> dict[str, Any]:
    return {
        "tasks": ("detection",),
        "num_frames": 3,
        "frame_stride": 3,
        "img_size": 640,
        "mean": (122.7717 / 255, 115.9465 / 255, 102.9801 / 255),
        "std": (1 / 255, 1 / 255, 1 / 255),
        "augment": AugmentConfig(
            size=640, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.5, brightness=0, contrast=0, saturation=0
        ),
        "batch_size": 1,
        "optimizer": "sgd",
        "momentum": 0.9,
        "lr": 0.0025,
        "weight_decay": 1e-4,
        "schedule": "multistep",
        "epochs": 12,
        "warmup_epochs": 1.0,  # 1/12 of the run ~ 8k of 96k iterations, factor 1/3
        "milestones": (64 / 96, 80 / 96, 88 / 96),
        "gamma": 0.5,
        "layer_decay": 1.0,
        "monitor": "detection/f1",
        "select_best": False,
        "val_split": "",
        "test_split": "test",
    }


PRESETS: dict[str, tuple[str, Any]] = {
    "default": ("our defaults for local fine-tuning (any task)", _default),
    "polypdiag": ("PolypDiag classification, the paper's protocol (reference §5.1)", _polypdiag),
    "cvc12k-official": ("CVC-12k segmentation, official split (test overlaps train)", lambda t: _cvc("cvc12k-official")),
    "cvc12k-leakfree": ("CVC-12k segmentation, leak-free split (no test sequence in train)", lambda t: _cvc("cvc12k-leakfree")),
    "kumc": ("KUMC detection, the paper's schedule (reference §5.3)", _kumc),
}  # fmt: skip


def get_preset(name: str, tasks: tuple[str, ...] = ("classification",)) -> dict[str, Any]:
    """Overrides of ``FinetuneConfig`` for preset ``name`` (``preset`` itself included)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    out = dict(PRESETS[name][1](tuple(tasks)))
    out["preset"] = name
    return out
