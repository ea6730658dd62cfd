"""The pretraining recipe (reference §3): build everything, then ``train_one_epoch`` per epoch.

```python
from core_model.pretrain import load_config, train
result = train(load_config("core_model/pretrain/configs/demo_tiny.yaml"), out_dir="runs/demo", emit=print)
```

Single process on CPU or one GPU, or one process per GPU under ``torchrun`` (DDP student, ``DistributedSampler``
with ``set_epoch``, only rank 0 writes). Every epoch ends with a run checkpoint; ``resume=True`` restores every
object and continues exactly where the last completed epoch ended (augmentation randomness is keyed by
(seed, epoch, clip) and the global torch RNG — DropPath — is re-seeded per epoch, so an interrupted and resumed run
gives the same weights as an uninterrupted one). A non-finite loss stops the run (``NonFiniteLossError``) before
the optimiser touches the weights; the last good checkpoint stays as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from core_model import runtime
from core_model.pretrain.config import PretrainConfig, config_from_dict, config_to_dict, save_config
from core_model.pretrain.data import EpochTaggedSampler, PretrainClips, read_clip_list
from core_model.pretrain.head import DINOHead, MultiCropWrapper
from core_model.pretrain.loss import DINOLoss, teacher_temp_schedule
from core_model.pretrain.optim import cosine_scheduler, ema_update, param_groups, student_update
from core_model.pretrain.state import (
    ResumeError,
    StartCheckpoint,
    export_model_dir,
    export_official,
    load_run_checkpoint,
    read_start_checkpoint,
    resolve_init_checkpoint,
    save_run_checkpoint,
)
from core_model.training import restore

log = logging.getLogger(__name__)

__all__ = [
    "NonFiniteLossError",
    "Schedules",
    "StepRecord",
    "TrainResult",
    "build_loss",
    "build_models",
    "build_optimizer",
    "build_schedules",
    "continue_from",
    "train",
    "train_one_epoch",
]

Emit = Callable[[dict[str, Any]], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the run stopped and the last good checkpoint was kept."""


@dataclass
class TrainResult:
    out_dir: Path
    epochs_done: int
    last_loss: float
    checkpoint: Path | None
    export_dir: Path | None


# ============================================================================================== models


def _load_part(module: nn.Module, sd: dict[str, torch.Tensor], prefix: str, where: str, strict: bool) -> bool:
    """Load the ``prefix``-keys of ``sd`` into ``module``. Exact keys and shapes, else: ``strict`` raises a
    ``CheckpointError`` naming the file and the tensors; otherwise returns False and loads nothing."""
    from core_model.checkpoint import CheckpointError

    found = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{prefix}{k}: checkpoint {tuple(found[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        if strict:
            raise CheckpointError(
                f"{where}: its '{prefix}*' weights do not fit this model: missing {missing[:6]}, "
                f"unexpected {unexpected[:6]}, {'; '.join(shapes[:6]) or 'shapes agree'}"
            )
        return False
    module.load_state_dict(found, strict=True)
    return True


def build_models(
    cfg: PretrainConfig,
    start: StartCheckpoint | None = None,
    *,
    from_config: bool = True,
    backbone_config: dict[str, Any] | None = None,
) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Student and teacher (the teacher takes no gradients), started from ``start`` (default: read
    ``cfg.model.init_checkpoint`` unless ``from_config`` is False; None/"scratch": random initialisation).

    An official run checkpoint gives the student its ``student`` weights and the teacher its ``teacher`` weights; other
    layouts give both the same backbone. The backbone must fit exactly (``CheckpointError`` otherwise); a DINO head is
    loaded when the file has one of this head's shapes, otherwise it starts from scratch (and so do the centre and the
    optimiser state). A model directory decides the backbone's architecture (``model.overrides`` still apply), and so
    does ``backbone_config`` (a resumed run's own, from its checkpoint)."""
    from core_model.models import create_model
    from core_model.models.config import EndoFMConfig
    from core_model.models.endofm import EndoFM

    if start is None and from_config:
        init = resolve_init_checkpoint(cfg.model.init_checkpoint)
        start = read_start_checkpoint(init) if init else None
    overrides = dict(cfg.model.overrides)
    if cfg.model.drop_path_rate is not None:
        overrides.setdefault("drop_path_rate", cfg.model.drop_path_rate)
    if backbone_config is not None:
        backbone = EndoFM(EndoFMConfig.from_dict(backbone_config))
    elif start is not None and start.meta is not None:
        backbone = EndoFM(
            start.meta.config.replace(**overrides)
        )  # the directory says which backbone it holds
    else:
        backbone = create_model(cfg.model.arch, **overrides)
    h = cfg.head
    head = DINOHead(
        backbone.embed_dim, h.out_dim, h.hidden_dim, h.bottleneck_dim, h.nlayers, h.norm_last_layer, h.use_bn
    )
    student = MultiCropWrapper(backbone, head)
    teacher = copy.deepcopy(student)
    if start is not None:
        for model, sd in ((student, start.student), (teacher, start.teacher)):
            _load_part(model.backbone, sd, "backbone.", start.path, strict=True)
        heads = [
            _load_part(m.head, sd, "head.", start.path, strict=False)
            for m, sd in ((student, start.student), (teacher, start.teacher))
        ]
        start.head_loaded = all(heads)
        if not start.head_loaded:
            teacher.head.load_state_dict(student.head.state_dict())
            if any(k.startswith("head.") for k in start.teacher):
                log.info(
                    "%s: its DINO head does not match this head's shapes; the head starts from scratch",
                    start.path,
                )
        log.info(
            "student and teacher start from %s (%s%s)",
            start.path,
            start.source,
            ", with its DINO head" if start.head_loaded else "",
        )
    for p in teacher.parameters():
        p.requires_grad = False
    teacher.train(cfg.run.teacher_train_mode)
    if cfg.model.grad_checkpointing:
        student.backbone.set_grad_checkpointing(True)
    return student, teacher


def build_loss(cfg: PretrainConfig) -> DINOLoss:
    o = cfg.optim
    temps = teacher_temp_schedule(
        o.warmup_teacher_temp, o.teacher_temp, o.warmup_teacher_temp_epochs, o.epochs
    )
    return DINOLoss(
        cfg.head.out_dim,
        cfg.n_views,
        temps,
        o.student_temp,
        o.center_momentum,
        center_init=o.center_init,
        centering=o.centering,
    )


def build_optimizer(
    cfg: PretrainConfig, student: nn.Module, device: torch.device | str = "cpu"
) -> torch.optim.AdamW:
    """AdamW over the official parameter groups (weights decayed, biases and 1-D tensors not)."""
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(
        param_groups(_unwrap(student)),
        betas=(cfg.optim.betas[0], cfg.optim.betas[1]),
        fused=fused,
        foreach=None if fused else True,
    )


def build_schedules(cfg: PretrainConfig, niter: int, world_size: int = 1) -> Schedules:
    """lr (peak ``optim.lr`` x global batch / 256, linear warm-up), weight decay and teacher momentum per iteration."""
    o = cfg.optim
    global_batch = cfg.data.batch_size_per_gpu * world_size
    return Schedules(
        lr=cosine_scheduler(o.lr * global_batch / 256.0, o.min_lr, o.epochs, niter, o.warmup_epochs),
        wd=cosine_scheduler(o.weight_decay, o.weight_decay_end, o.epochs, niter),
        momentum=cosine_scheduler(o.momentum_teacher, 1.0, o.epochs, niter),
    )


def continue_from(
    start: StartCheckpoint, dino_loss: DINOLoss, optimizer: torch.optim.Optimizer | None = None
) -> None:
    """Restore what an official run checkpoint holds besides the weights: the DINO centre and, when present and of
    this model's shape, the optimiser state. Nothing when the DINO head did not load (they belong to another head)."""
    if not start.head_loaded:
        return
    if start.center is not None:
        if tuple(start.center.shape) != tuple(dino_loss.center.shape):
            log.info(
                "%s: centre %s does not fit this head; it starts at zero",
                start.path,
                tuple(start.center.shape),
            )
        else:
            dino_loss.center.copy_(start.center)
    if optimizer is not None and start.optimizer is not None:
        try:
            optimizer.load_state_dict(start.optimizer)
        except (ValueError, KeyError) as exc:
            log.info(
                "%s: its optimiser state does not fit this run (%s); AdamW starts fresh", start.path, exc
            )


# ============================================================================================== one epoch


@dataclass
class Schedules:
    """Per-iteration values (dino's ``lr_schedule``, ``wd_schedule``, ``momentum_schedule``), indexed by the global
    iteration ``epoch * niter + step``."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray


@dataclass
class StepRecord:
    """What one optimisation step computed (handed to ``train_one_epoch``'s ``on_step``)."""

    epoch: int
    step: int  # within the epoch
    it: int  # global iteration (the schedules' index)
    loss: float
    lr: float
    wd: float
    momentum: float
    teacher_temp: float
    student_out: torch.Tensor  # [V*B, K], detached
    teacher_out: torch.Tensor  # [2*B, K], detached
    batch: int


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _all_finite(loss: torch.Tensor) -> bool:
    ok = torch.isfinite(loss.detach()).float().reshape(1)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        ok = ok.to(loss.device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def train_one_epoch(
    student: nn.Module,
    teacher: nn.Module,
    dino_loss: DINOLoss,
    data: Iterable[Sequence[torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    schedules: Schedules,
    epoch: int,
    *,
    clip_grad: float = 3.0,
    freeze_last_layer: int = 1,
    niter: int | None = None,
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> float:
    """One epoch of the official step (``train_ssl.py::train_one_epoch``) over ``data``, an iterable of view lists
    ``[g1, g2, l1, ...]`` (each ``[B, 3, T_v, S_v, S_v]``). Returns the epoch's mean loss (this rank).

    Per step, in the official order: set lr (every group) and weight decay (group 0) from the schedules at
    ``it = epoch * niter + step``; teacher on the 2 global views, student on all; DINO loss (which updates the
    centre); stop on a non-finite loss before touching the weights; backward; per-parameter clipping; drop the last
    layer's gradients while ``epoch < freeze_last_layer``; optimiser step; EMA of the teacher with ``momentum[it]``.
    ``niter`` defaults to ``len(data)``; ``on_step`` receives a ``StepRecord`` after every step."""
    device = torch.device(device)
    student.train()
    s_params = list(_unwrap(student).parameters())
    t_params = list(teacher.parameters())
    niter = len(data) if niter is None else niter  # type: ignore[arg-type]
    total, count = 0.0, 0
    for step, views in enumerate(data):
        it = epoch * niter + step
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = float(schedules.lr[it])
            if i == 0:
                group["weight_decay"] = float(schedules.wd[it])
        views = [v.to(device, non_blocking=True) for v in views]  # v: [B, 3, T_v, S_v, S_v]

        with runtime.autocast(device, dtype=amp or torch.float32):
            with torch.no_grad():
                teacher_out = teacher(views[:2])  # [2B, K]
            student_out = student(views)  # [V*B, K]
        loss = dino_loss(student_out, teacher_out, epoch)
        if not _all_finite(loss):
            raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch} step {step}")

        student_update(loss, optimizer, scaler, student, clip_grad, epoch, freeze_last_layer)
        ema_update(t_params, s_params, float(schedules.momentum[it]))

        value = float(loss.item())
        total += value
        count += 1
        if on_step is not None:
            on_step(
                StepRecord(
                    epoch=epoch,
                    step=step,
                    it=it,
                    loss=value,
                    lr=float(schedules.lr[it]),
                    wd=float(schedules.wd[it]),
                    momentum=float(schedules.momentum[it]),
                    teacher_temp=dino_loss.teacher_temp(epoch),
                    student_out=student_out.detach(),
                    teacher_out=teacher_out.detach(),
                    batch=int(views[0].shape[0]),
                )
            )
    return total / max(count, 1)


# ============================================================================================== the run


def _precision(cfg: PretrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed)."""
    choice = cfg.run.precision
    if choice == "fp32":
        return None, False
    if choice == "auto":
        dtype = runtime.amp_dtype(device)
    else:
        dtype = torch.bfloat16 if choice == "bf16" else torch.float16
    return dtype, bool(dtype == torch.float16 and device.type == "cuda")


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _build_loader(cfg: PretrainConfig, info: runtime.DistInfo, device: torch.device) -> DataLoader:
    clips = read_clip_list(cfg.data.path)
    dataset = PretrainClips(clips, cfg.views, cfg.augment, cfg.run.seed, cfg.data.max_retries)
    per_rank = len(dataset) // info.world_size
    if per_rank < cfg.data.batch_size_per_gpu:
        raise ValueError(
            f"{cfg.data.path}: {len(dataset)} clips are too few for batch {cfg.data.batch_size_per_gpu} per process "
            f"x {info.world_size} process(es)"
        )
    base = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.run.seed, drop_last=True
    )
    workers = cfg.data.num_workers
    return DataLoader(
        dataset,
        batch_size=cfg.data.batch_size_per_gpu,
        sampler=EpochTaggedSampler(base),
        num_workers=workers,
        pin_memory=cfg.data.pin_memory and device.type == "cuda",
        drop_last=True,
        worker_init_fn=_worker_init if workers > 0 else None,
        persistent_workers=workers > 0,
    )


class _MetricsLog:
    """``metrics.jsonl`` in the run directory (rank 0 only) + the caller's ``emit``."""

    def __init__(self, path: Path | None, emit: Emit | None) -> None:
        self.path, self._emit = path, emit

    def __call__(self, event: dict[str, Any]) -> None:
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
        if self._emit is not None:
            self._emit(event)


class _Progress:
    """``on_step`` of the run: a ``progress`` event every ``log_every`` steps and at the end of the epoch."""

    def __init__(self, metrics: _MetricsLog, niter: int, log_every: int) -> None:
        self.metrics, self.niter, self.every = metrics, niter, max(log_every, 1)
        self.t0 = time.perf_counter()

    def __call__(self, r: StepRecord) -> None:
        if (r.step + 1) % self.every and r.step + 1 != self.niter:
            return
        loss = float(runtime.all_reduce_mean(r.loss))  # every rank reaches this step: the mean over ranks
        elapsed = time.perf_counter() - self.t0
        self.metrics(
            {
                "event": "progress",
                "epoch": r.epoch,
                "step": r.step + 1,
                "steps": self.niter,
                "loss": loss,
                "lr": r.lr,
                "wd": r.wd,
                "momentum": r.momentum,
                "clips_per_s": (r.step + 1) * r.batch / max(elapsed, 1e-9),
            }
        )


def _check_resume_config(saved: dict[str, Any], cfg: PretrainConfig, path: Path) -> None:
    old = config_from_dict(saved)
    for section in ("model", "head", "views"):
        if config_to_dict(old)[section] != config_to_dict(cfg)[section]:
            raise ResumeError(
                f"{path}: the run was started with a different '{section}' section; "
                "resume with the run's own config (omit --config) or start a new run"
            )


def train(
    cfg: PretrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    emit: Emit | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Run (or resume) pretraining into ``out_dir``. ``stop_after_epochs`` ends this invocation after that many
    epochs (a later ``resume`` continues), e.g. to fit a cluster's job-time limit."""
    cfg.validate()
    threads = torch.get_num_threads()
    if cfg.run.num_threads is not None:
        torch.set_num_threads(cfg.run.num_threads)
    try:
        return _train(cfg, Path(out_dir), resume, emit, stop_after_epochs)
    finally:
        torch.set_num_threads(threads)


def _train(
    cfg: PretrainConfig, out: Path, resume: bool, emit: Emit | None, stop_after_epochs: int | None
) -> TrainResult:
    # -------------------------------------------------------------------------------- runtime
    if resume and not (out / "checkpoint.pth").is_file():
        raise ResumeError(
            f"{out / 'checkpoint.pth'}: no checkpoint to resume from (run without --resume to start)"
        )
    info = runtime.init_distributed()
    device = runtime.pick_device(cfg.run.device)
    main = info.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    runtime.barrier()
    metrics = _MetricsLog(out / "metrics.jsonl" if main else None, emit if main else None)
    runtime.seed_everything(cfg.run.seed + info.rank)
    amp, need_scaler = _precision(cfg, device)

    # -------------------------------------------------------------------------------- data
    loader = _build_loader(cfg, info, device)
    niter = len(loader)

    # -------------------------------------------------------------------------------- models
    ckpt_path = out / "checkpoint.pth"
    ckpt = load_run_checkpoint(ckpt_path) if resume else None
    start = None
    if ckpt is None:
        init = resolve_init_checkpoint(cfg.model.init_checkpoint)
        start = read_start_checkpoint(init) if init else None
    student, teacher = build_models(
        cfg, start, from_config=False, backbone_config=ckpt.get("backbone_config") if ckpt else None
    )
    student.to(device)
    teacher.to(device)
    if info.distributed and cfg.head.use_bn and device.type == "cuda":
        # batch statistics over all GPUs, as DINO does (SyncBatchNorm needs CUDA; gloo on CPU keeps per-rank BN)
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
        teacher = nn.SyncBatchNorm.convert_sync_batchnorm(teacher)
    if info.distributed:
        student = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None
        )
    dino_loss = build_loss(cfg).to(device)

    # -------------------------------------------------------------------------------- optimiser and schedules
    optimizer = build_optimizer(cfg, student, device)
    scaler = torch.amp.GradScaler(device.type) if need_scaler else None
    o = cfg.optim
    schedules = build_schedules(cfg, niter, info.world_size)

    # -------------------------------------------------------------------------------- resume or continue
    start_epoch = 0
    if ckpt is not None:
        _check_resume_config(ckpt["config"], cfg, ckpt_path)
        restore(
            ckpt,
            ckpt_path,
            student=_unwrap(student),
            teacher=teacher,
            optimizer=optimizer,
            dino_loss=dino_loss,
        )
        if scaler is not None and ckpt.get("scaler"):
            restore(ckpt, ckpt_path, scaler=scaler)
        start_epoch = int(ckpt["epoch"])
        log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)
    elif start is not None:
        continue_from(start, dino_loss, optimizer)
    if main:
        save_config(cfg, out / "config.yaml")
    metrics(
        {
            "event": "start",
            "epochs": o.epochs,
            "start_epoch": start_epoch,
            "steps_per_epoch": niter,
            "clips": len(loader.dataset),
            "world_size": info.world_size,
            "device": str(device),
            "precision": str(amp).replace("torch.", "") if amp else "fp32",
            "out_dir": str(out),
            "init": "resume" if resume else (start.path if start is not None else "scratch"),
            "arch": _arch_name(_unwrap(student).backbone.cfg, cfg.model.arch),
        }
    )

    # -------------------------------------------------------------------------------- epochs
    last_loss = float("nan")
    last_ckpt: Path | None = ckpt_path if ckpt_path.is_file() else None
    epochs_this_run = 0
    for epoch in range(start_epoch, o.epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        torch.manual_seed(cfg.run.seed + 100_003 * (epoch + 1) + info.rank)  # DropPath draws: resume-exact
        t0 = time.perf_counter()
        try:
            last_loss = train_one_epoch(
                student,
                teacher,
                dino_loss,
                loader,
                optimizer,
                schedules,
                epoch,
                clip_grad=o.clip_grad,
                freeze_last_layer=o.freeze_last_layer,
                scaler=scaler,
                device=device,
                amp=amp,
                on_step=_Progress(metrics, niter, cfg.run.log_every),
            )
        except NonFiniteLossError as exc:
            where = f"last good checkpoint kept: {last_ckpt}" if last_ckpt else "no checkpoint yet"
            raise NonFiniteLossError(
                f"{exc}; training stopped ({where}). Lower optim.lr, check the data, or use run.precision=fp32."
            ) from None
        last_loss = float(runtime.all_reduce_mean(last_loss))
        state = {
            "student": _unwrap(student).state_dict(),
            "teacher": teacher.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "dino_loss": dino_loss.state_dict(),
            "epoch": epoch + 1,
            "config": config_to_dict(cfg),
            "backbone_config": _unwrap(student).backbone.cfg.to_dict(),
        }
        if main:
            save_run_checkpoint(ckpt_path, state)
            if cfg.run.saveckp_freq > 0 and epoch % cfg.run.saveckp_freq == 0:
                save_run_checkpoint(out / f"checkpoint{epoch:04}.pth", state)
            if cfg.run.export_every_epoch:
                _export(cfg, out, _unwrap(student), teacher, dino_loss, epoch + 1)
        last_ckpt = ckpt_path
        runtime.barrier()
        metrics(
            {
                "event": "epoch",
                "epoch": epoch,
                "loss": last_loss,
                "seconds": time.perf_counter() - t0,
                "checkpoint": str(ckpt_path),
            }
        )
        epochs_this_run += 1
        if stop_after_epochs is not None and epochs_this_run >= stop_after_epochs and epoch + 1 < o.epochs:
            metrics(
                {
                    "event": "stopped",
                    "epoch": epoch,
                    "reason": "stop_after_epochs",
                    "checkpoint": str(ckpt_path),
                }
            )
            return TrainResult(out, epoch + 1, last_loss, ckpt_path, None)

    # -------------------------------------------------------------------------------- export
    export_dir = None
    if main:
        export_dir = _export(cfg, out, _unwrap(student), teacher, dino_loss, o.epochs)
    runtime.barrier()
    metrics(
        {
            "event": "done",
            "epochs": o.epochs,
            "loss": last_loss,
            "export": str(export_dir) if export_dir else None,
        }
    )
    return TrainResult(out, o.epochs, last_loss, last_ckpt, export_dir)


def _export(
    cfg: PretrainConfig, out: Path, student: nn.Module, teacher: nn.Module, dino_loss: nn.Module, epoch: int
) -> Path:
    """``export/teacher_official.pth`` (official layout) and ``export/model`` (our model directory)."""
    export_dir = out / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    export_official(export_dir / "teacher_official.pth", teacher, student, epoch, dino_loss)
    preprocess = {
        "mean": list(cfg.augment.mean),
        "std": list(cfg.augment.std),
        "num_frames": int(
            teacher.backbone.cfg.num_frames
        ),  # the time table's length (8: official downstream)
        "img_size": cfg.views.global_size,
        "frame_stride": cfg.views.sampling_rate,
    }
    arch = _arch_name(teacher.backbone.cfg, cfg.model.arch)  # a model directory start may have set another
    provenance = {"source": "endofm pretrain", "epochs": epoch, "run_dir": str(out), "arch": arch}
    export_model_dir(export_dir / "model", teacher.backbone, arch, preprocess, provenance)
    return export_dir


def _arch_name(bcfg: Any, fallback: str) -> str:
    """The named architecture whose width, depth and heads ``bcfg`` has (``fallback`` when none)."""
    from core_model.models.config import MODEL_CONFIGS

    for name, c in MODEL_CONFIGS.items():
        if (c.embed_dim, c.depth, c.num_heads) == (bcfg.embed_dim, bcfg.depth, bcfg.num_heads):
            return name
    return fallback
