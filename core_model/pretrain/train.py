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
from collections.abc import Callable
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
from core_model.pretrain.optim import (
    cancel_last_layer_grads,
    clip_gradients_per_param,
    cosine_scheduler,
    ema_update,
    param_groups,
)
from core_model.pretrain.state import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    ResumeError,
    atomic_torch_save,
    export_model_dir,
    export_official,
    load_run_checkpoint,
)

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainResult", "build_models", "train", "train_one_epoch"]

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


def _load_init_head(path: str, head: nn.Module) -> bool:
    """Load the DINO head from a checkpoint that has one (SVT / Endo-FM pretraining layouts) when every tensor
    matches this head's shapes; otherwise leave the head as initialised and say so."""
    from core_model.checkpoint import load_backbone_state_dict

    extra = load_backbone_state_dict(path).extra or {}
    found = {k[len("head.") :]: v for k, v in extra.items() if k.startswith("head.")}
    expected = head.state_dict()
    if set(found) != set(expected) or any(found[k].shape != expected[k].shape for k in expected):
        if found:
            log.info(
                "%s: its DINO head does not match this head's shapes; the head starts from scratch", path
            )
        return False
    head.load_state_dict(found, strict=True)
    return True


def build_models(cfg: PretrainConfig) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Student and teacher (same initial weights; the teacher takes no gradients)."""
    from core_model.models import create_model

    overrides = dict(cfg.model.overrides)
    if cfg.model.drop_path_rate is not None:
        overrides.setdefault("drop_path_rate", cfg.model.drop_path_rate)
    backbone = create_model(cfg.model.arch, checkpoint=cfg.model.init_checkpoint, **overrides)
    h = cfg.head
    head = DINOHead(
        backbone.embed_dim, h.out_dim, h.hidden_dim, h.bottleneck_dim, h.nlayers, h.norm_last_layer, h.use_bn
    )
    if cfg.model.init_checkpoint and cfg.model.init_head and _load_init_head(cfg.model.init_checkpoint, head):
        log.info("DINO head initialised from %s", cfg.model.init_checkpoint)
    student = MultiCropWrapper(backbone, head)
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    if cfg.model.grad_checkpointing:
        student.backbone.set_grad_checkpointing(True)
    return student, teacher


# ============================================================================================== one epoch


@dataclass
class _Schedules:
    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray


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
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    schedules: _Schedules,
    epoch: int,
    cfg: PretrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    emit: Emit,
    checkpoint_path: Path | None,
) -> float:
    """One pass over the loader; returns the mean loss of the epoch (this rank)."""
    student.train()
    teacher.train(cfg.run.teacher_train_mode)
    s_params = list(_unwrap(student).parameters())
    t_params = list(teacher.parameters())
    niter = len(loader)
    total, count = 0.0, 0
    t0 = time.perf_counter()
    for step, views in enumerate(loader):
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
            where = (
                f"last good checkpoint kept: {checkpoint_path}" if checkpoint_path else "no checkpoint yet"
            )
            raise NonFiniteLossError(
                f"loss is {loss.item()} at epoch {epoch} step {step}; training stopped ({where}). "
                "Lower optim.lr, check the data, or use run.precision=fp32."
            )

        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.optim.clip_grad > 0:
            clip_gradients_per_param(_unwrap(student).parameters(), cfg.optim.clip_grad)
        cancel_last_layer_grads(student, epoch, cfg.optim.freeze_last_layer)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        ema_update(t_params, s_params, float(schedules.momentum[it]))

        value = float(loss.item())
        total += value
        count += 1
        if (step + 1) % max(cfg.run.log_every, 1) == 0 or step + 1 == niter:
            value = float(runtime.all_reduce_mean(value))  # every rank reaches this step: the mean over ranks
            elapsed = time.perf_counter() - t0
            emit(
                {
                    "event": "progress",
                    "epoch": epoch,
                    "step": step + 1,
                    "steps": niter,
                    "loss": value,
                    "lr": float(schedules.lr[it]),
                    "wd": float(schedules.wd[it]),
                    "momentum": float(schedules.momentum[it]),
                    "clips_per_s": (step + 1) * views[0].shape[0] / max(elapsed, 1e-9),
                }
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
    student, teacher = build_models(cfg)
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
    n_views = cfg.n_views
    dino_loss = DINOLoss(
        cfg.head.out_dim,
        n_views,
        teacher_temp_schedule(
            cfg.optim.warmup_teacher_temp,
            cfg.optim.teacher_temp,
            cfg.optim.warmup_teacher_temp_epochs,
            cfg.optim.epochs,
        ),
        cfg.optim.student_temp,
        cfg.optim.center_momentum,
        center_init=cfg.optim.center_init,
        centering=cfg.optim.centering,
    ).to(device)

    # -------------------------------------------------------------------------------- optimiser and schedules
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(
        param_groups(_unwrap(student)),
        betas=(cfg.optim.betas[0], cfg.optim.betas[1]),
        fused=fused,
        foreach=None if fused else True,
    )
    scaler = torch.amp.GradScaler(device.type) if need_scaler else None
    o = cfg.optim
    global_batch = cfg.data.batch_size_per_gpu * info.world_size
    schedules = _Schedules(
        lr=cosine_scheduler(o.lr * global_batch / 256.0, o.min_lr, o.epochs, niter, o.warmup_epochs),
        wd=cosine_scheduler(o.weight_decay, o.weight_decay_end, o.epochs, niter),
        momentum=cosine_scheduler(o.momentum_teacher, 1.0, o.epochs, niter),
    )

    # -------------------------------------------------------------------------------- resume
    ckpt_path = out / "checkpoint.pth"
    start_epoch = 0
    if resume:
        ckpt = load_run_checkpoint(ckpt_path)
        _check_resume_config(ckpt["config"], cfg, ckpt_path)
        _unwrap(student).load_state_dict(ckpt["student"])
        teacher.load_state_dict(ckpt["teacher"])
        optimizer.load_state_dict(ckpt["optimizer"])
        dino_loss.load_state_dict(ckpt["dino_loss"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"])
        log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)
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
        last_loss = train_one_epoch(
            student,
            teacher,
            dino_loss,
            loader,
            optimizer,
            scaler,
            schedules,
            epoch,
            cfg,
            device,
            amp,
            metrics,
            last_ckpt,
        )
        last_loss = float(runtime.all_reduce_mean(last_loss))
        state = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "student": _unwrap(student).state_dict(),
            "teacher": teacher.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "dino_loss": dino_loss.state_dict(),
            "epoch": epoch + 1,
            "config": config_to_dict(cfg),
        }
        if main:
            atomic_torch_save(state, ckpt_path)
            if cfg.run.saveckp_freq > 0 and epoch % cfg.run.saveckp_freq == 0:
                atomic_torch_save(state, out / f"checkpoint{epoch:04}.pth")
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
    provenance = {"source": "endofm pretrain", "epochs": epoch, "run_dir": str(out), "arch": cfg.model.arch}
    export_model_dir(export_dir / "model", teacher.backbone, cfg.model.arch, preprocess, provenance)
    return export_dir
