"""``FinetuneConfig``: everything one fine-tuning run needs, as one typed, JSON-serialisable dataclass.

It is saved into every checkpoint and into the output model's provenance, so a run can be resumed and a model
version says exactly how it was made. Presets (``core_model.finetune.presets``) fill it in; the CLI overrides
single fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core_model.contract import IMAGENET_MEAN, IMAGENET_STD, unknown_fields
from core_model.finetune.augment import AugmentConfig

TASKS = ("classification", "segmentation", "detection")
# the metric each task is judged by (Dice per frame with both-empty frames counting 1: what a reviewer sees;
# the paper's per-sequence Dice rewards masks on empty frames)
HEADLINE = {
    "classification": "classification/f1",
    "segmentation": "segmentation/dice_frame_strict",
    "detection": "detection/f1",
}


def monitor_score(metrics: dict[str, float], monitor: str, tasks: tuple[str, ...]) -> float | None:
    """The value of ``monitor`` in ``metrics`` (``mean``: mean of the tasks' headline metrics)."""
    if monitor == "mean":
        vals = [metrics[HEADLINE[t]] for t in tasks if HEADLINE[t] in metrics]
        return sum(vals) / len(vals) if vals else None
    return metrics.get(monitor)


MODES = ("full", "lora", "linear")


@dataclass
class FinetuneConfig:
    manifest: str = ""
    out_dir: str = ""
    tasks: tuple[str, ...] = ("classification",)
    preset: str = "default"
    arch: str = "endofm_tiny"  # used when ``init`` is empty or a bare backbone checkpoint
    init: str = ""  # model dir (our format), official/our checkpoint file, or "" (random init)
    arch_explicit: bool = (
        False  # ``arch`` was asked for (--arch): checked against ``init``'s weights, not trusted
    )
    # the child is fed as its parent (``init``): data fields not named here are inherited from the parent's
    # model.json; here: field -> why it was set explicitly ("preset polypdiag", "--img-size", ...)
    data_overrides: dict[str, str] = field(default_factory=dict)
    inherit_data: bool = True
    # after export: choose the video-level operating point on the validation split through the serving path and
    # fit the out-of-domain reference on the same videos (core_model.inference.calibrate); at most this many videos
    calibrate_videos: int = 16
    # data
    num_frames: int = 8
    img_size: int = 112
    frame_stride: int = 4  # frames between sampled frames in a training clip
    window: str = "stride"  # "stride": T frames every frame_stride; "linspace": T frames spread over window_s
    window_s: float = 32 * 8 / 30  # PolypDiag's 256-frame window at 30 fps (linspace mode)
    clips_per_video: int = 4  # training clips drawn per video per epoch
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sequences: str = ""  # "" = whole videos; preset name of a hard-coded sequence split (CVC-12k)
    val_split: str = "val"
    test_split: str = "test"
    # optimisation
    epochs: int = 10
    batch_size: int = 0  # 0: chosen from the device's memory
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: float = 1.0
    schedule: str = "cosine"  # cosine | poly | multistep | cosine_epoch
    milestones: tuple[float, ...] = ()  # multistep: fractions of the run
    gamma: float = 0.5
    weight_decay: float = 0.05
    momentum: float = 0.9
    layer_decay: float = 0.75
    drop_path: float = 0.1
    grad_clip: float = 0.0  # 0: none; >0: global norm
    loss_weights: dict[str, float] = field(default_factory=dict)
    # parameter-efficient mode
    mode: str = (
        "full"  # full | lora (frozen backbone + LoRA on qkv/proj) | linear (frozen backbone, heads only)
    )
    lora_rank: int = 8
    lora_alpha: float = 16.0
    # machine
    device: str = ""  # "" = auto
    amp: str = "auto"  # auto | bf16 | fp16 | off
    grad_checkpointing: str = "auto"  # auto | on | off
    memory_budget_gb: float = 0.0  # 0: the device's total memory
    num_workers: int = 0
    # run control
    seed: int = 0
    patience: int = 0  # early stopping: validations without improvement of ``monitor``; 0 disables
    monitor: str = ""  # e.g. "classification/f1"; "" = the preset's choice
    select_best: bool = True  # export the best-``monitor`` epoch (False: the last epoch)
    max_steps_per_epoch: int = 0  # 0: no cap
    # wall-clock budget of the whole run in seconds (0: none): training stops after the step that would leave too
    # little time for the last validation, calibration and export; the checkpoint is saved and the model exported
    time_budget_s: float = 0.0
    eval_clip_stride: int = 0  # evaluation clips step; 0 = num_frames (non-overlapping)
    eval_every: int = 1  # validate every N epochs (and always after the last one)
    export_fp16: bool = False  # store the exported weights as float16 (half the size)
    head_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {list(TASKS)}, got {list(self.tasks)}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "multistep", "cosine_epoch"):
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be auto|bf16|fp16|off, got {self.amp!r}")
        if self.grad_checkpointing not in ("auto", "on", "off"):
            raise ValueError(f"grad_checkpointing must be auto|on|off, got {self.grad_checkpointing!r}")
        if self.window not in ("stride", "linspace"):
            raise ValueError(f"window must be 'stride' or 'linspace', got {self.window!r}")
        if self.epochs < 1 or self.num_frames < 1 or self.img_size < 16:
            raise ValueError("epochs and num_frames must be >= 1 and img_size >= 16")
        if isinstance(self.augment, dict):
            aug = dict(self.augment)
            for k in ("scale", "ratio", "short_side"):
                if k in aug and aug[k] is not None:
                    aug[k] = tuple(aug[k])
            self.augment = AugmentConfig(**aug)
        self.mean = tuple(float(x) for x in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(x) for x in self.std)  # type: ignore[assignment]
        self.milestones = tuple(float(x) for x in self.milestones)

    @property
    def monitor_metric(self) -> str:
        """The validation metric for best-epoch selection and early stopping: the task's headline metric, or
        ``mean`` (the mean of each task's headline metric) for several tasks."""
        if self.monitor:
            return self.monitor
        return HEADLINE[self.tasks[0]] if len(self.tasks) == 1 else "mean"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        unknown = unknown_fields(cls, d)
        if unknown:
            raise ValueError(f"unknown fine-tuning option(s) {unknown}")
        return cls(**d)

    def replace(self, **kw: Any) -> FinetuneConfig:
        return dataclasses.replace(self, **kw)
