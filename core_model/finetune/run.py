"""``finetune(cfg, emit)``: one fine-tuning run, start to finish, reading like a recipe.

Events (``emit(dict)``; the CLI prints each as one JSON line):

- ``{"event": "start", "out_dir", "tasks", "device", "plan": {...}, "train_clips", "val_sequences", ...}``
- ``{"event": "progress", "epoch", "epochs", "step", "steps", "loss", "lr", "eta_s", "fraction"}`` (at most ~2/s)
- ``{"event": "epoch", "epoch", "train": {...}, "val": {...}, "monitor", "best", "best_epoch", "eta_s"}``
- ``{"event": "warning", "message"}`` (e.g. CUDA out of memory -> retrying the epoch with half the batch)
- ``{"event": "early_stop", "epoch", "best_epoch"}``
- ``{"event": "budget_stop", "epoch", "step", "steps", "elapsed_s", "budget_s", "message"}`` (and the same
  ``message`` as a ``warning``): the time budget (``time_budget_s``) ran out; the step in progress was finished,
  the partial epoch validated and checkpointed, and the model is exported; ``model.json`` ``provenance.stopped``
  records it
- ``{"event": "done", "model_dir", "metrics": {"val": {...}, "test": {...}}, "seconds"}``

Files in ``out_dir``: ``checkpoint.pth`` (every epoch, atomically: model, optimiser, scaler, epoch, iteration,
config, RNG states, history, best), ``best.pth`` (weights of the best epoch when ``select_best``), ``model/``
(the exported model directory, fp32 unless ``export_dtype`` says otherwise), ``result.json``.
``resume=True`` continues from ``checkpoint.pth`` with every object restored by name; the continuation is the same
run as one that was never interrupted (same seeds per epoch, same RNG state). Both checkpoints use the one
run-checkpoint format of ``core_model.training`` (versioned, atomic, read with ``weights_only=True``).

``finetune`` reads like the pretraining recipe: banner-separated steps that delegate machine planning
(``plan_run_machine``), resume (``read_resume`` / ``restore_run``), one epoch with its CUDA out-of-memory back-off
(``run_epoch``), the checkpoint (``save_run``) and the export (``export_run``) to named functions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core_model import runtime
from core_model.finetune import schedules as S
from core_model.finetune.config import FinetuneConfig, monitor_score
from core_model.finetune.data import (
    ClipDataset,
    FrameCache,
    build_sequences,
    check_files,
    collate,
    resolve_classes,
)
from core_model.finetune.engine import evaluate, make_targets, train_one_epoch
from core_model.finetune.lora import apply_lora, freeze_backbone, merge_lora
from core_model.finetune.machine import MachinePlan, choose_amp, plan_machine
from core_model.finetune.modeling import (
    build_task_model,
    export_model_dir,
    inherit_data_config,
    inherit_head_classes,
)
from core_model.training import (
    halve_batch_on_oom,
    load_run_checkpoint,
    restore,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
)

log = logging.getLogger(__name__)

Emit = Callable[[dict], None]

RUN_KEYS = (
    "model",
    "optimizer",
    "epoch",
    "iteration",
    "config",
    "batch_size",
    "history",
    "best",
    "best_epoch",
    "rng",
)


@dataclass
class FinetuneResult:
    model_dir: str
    metrics: dict[str, dict[str, float]]
    history: list[dict]
    seconds: float
    plan: dict


@dataclass
class RunData:
    """What the manifest gives a run: classes, the sequences of each split and the datasets."""

    manifest: Any
    classes: dict[str, tuple[str, ...]]
    train_seqs: list
    val_seqs: list
    test_seqs: list
    cache: FrameCache
    train_ds: ClipDataset
    val_ds: ClipDataset | None


@dataclass
class RunState:
    """What changes as the run goes and is saved in every checkpoint."""

    batch_size: int
    start_epoch: int = 0
    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    epoch_times: list[float] = field(default_factory=list)
    stopped: dict = field(default_factory=dict)  # why training ended before its epochs (the time budget)
    lineage: dict = field(
        default_factory=dict
    )  # what the child inherited from its parent (model.json lineage)


def _ignore(event: dict) -> None:
    return None


def _better(a: float, b: float | None) -> bool:
    return b is None or a > b


def manifest_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class TimeBudget:
    """The run's wall-clock budget (``time_budget_s`` from ``t0``; 0: none). ``should_stop()`` is asked before
    every training step: never before the run's first step; afterwards True when the time left would not hold one
    more step (the last step's duration) plus the tail after training, ``tail_s``: the last validation (measured
    once one has run, else its clips at a third of a training clip's time) and the calibration over the same
    held-out videos (as long again) and the export."""

    def __init__(self, seconds: float, t0: float, val_clips: int = 0, calibrates: bool = False):
        self.seconds, self.t0 = float(seconds), float(t0)
        self.val_clips, self.calibrates = int(val_clips), bool(calibrates)
        self.step_s: float | None = None
        self.batch = 1
        self.val_s: float | None = None
        self._last: float | None = None

    @property
    def active(self) -> bool:
        return self.seconds > 0

    def elapsed(self) -> float:
        return time.time() - self.t0

    def tail_s(self) -> float:
        if self.val_s is not None:
            val = self.val_s
        elif self.step_s is not None:
            val = self.val_clips / max(self.batch, 1) * self.step_s / 3.0
        else:
            val = 0.0
        return val * (2.0 if self.calibrates else 1.0) + 5.0

    def step_started(self) -> None:
        self._last = time.time()

    def step_done(self) -> None:
        if self._last is not None:
            self.step_s = time.time() - self._last

    def fits_another_step(self) -> bool:
        if not self.active or self.step_s is None:
            return True
        return self.elapsed() + self.step_s + self.tail_s() <= self.seconds

    def should_stop(self) -> bool:
        """Asked before each step (the run's first step always runs: its duration is unknown)."""
        if not self.active:
            return False
        if not self.fits_another_step():
            return True
        self.step_started()
        return False


# ================================================================================================ the recipe


def finetune(
    cfg: FinetuneConfig, emit: Emit | None = None, resume: bool = False, stop_after_epochs: int = 0
) -> FinetuneResult | None:
    """Run (or, with ``resume``, continue) ``cfg``. ``stop_after_epochs``: end this call after N epochs without
    exporting (continue later with ``resume=True``); returns None then."""
    emit = emit or _ignore
    t_start = time.time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pth"

    # ============================== resume =======================================================
    resumed = None
    if resume:
        resumed, cfg = read_resume(ckpt_path, cfg)

    # ============================== parent =======================================================
    parent, lineage = None, {}
    if cfg.init:  # loaded once; the child is fed as the parent unless a field was set explicitly
        from core_model.loading import load_model

        parent = load_model(cfg.init, arch=cfg.arch if cfg.arch_explicit else None)
        if resumed is None:
            cfg, lineage = inherit_data_config(cfg, parent)
        else:
            lineage = dict(resumed.get("lineage") or {})
        for k, o in lineage.get("overrides", {}).items():
            msg = f"{k}: {o['child']} instead of the parent's {o['parent']} ({o['reason']})"
            emit({"event": "warning", "message": msg})

    # ============================== data =========================================================
    runtime.seed_everything(cfg.seed)
    data = build_data(cfg, parent, lineage)

    # ============================== model ========================================================
    device = runtime.pick_device(cfg.device or None)
    model, init_info = build_model(cfg, data.classes, device, parent)
    del parent

    # ============================== machine ======================================================
    plan = plan_run_machine(cfg, model, data.train_ds, device, init_info, resumed)
    runtime.seed_everything(cfg.seed)  # the probe must not change what the run draws
    model.backbone.set_grad_checkpointing(plan.grad_checkpointing)
    autocast = functools.partial(runtime.autocast, device, plan.torch_dtype or torch.float32)
    scaler = torch.amp.GradScaler("cuda") if plan.amp_dtype == "fp16" else None

    # ============================== optimiser and schedule =======================================
    optimizer = build_optimizer(cfg, model)
    state = RunState(batch_size=plan.batch_size, lineage=lineage)
    if resumed is not None:
        restore_run(resumed, ckpt_path, model, optimizer, scaler, state)
        emit({"event": "resumed", "epoch": state.start_epoch, "checkpoint": str(ckpt_path)})
    lr_schedule = make_schedule(cfg, len(data.train_ds), state.batch_size)
    emit(_start_event(cfg, out_dir, device, plan, init_info, data, state))

    # ============================== training loop ================================================
    budget = TimeBudget(
        cfg.time_budget_s,
        t_start,
        len(data.val_ds) if data.val_ds is not None else 0,
        cfg.calibrate_videos > 0 and "classification" in cfg.tasks and bool(data.val_seqs),
    )
    epoch = state.start_epoch
    while epoch < cfg.epochs:
        t_ep = time.time()
        budget.batch = state.batch_size
        if epoch > state.start_epoch and not budget.fits_another_step():
            _budget_stop(state, budget, cfg, epoch - 1, None, None, emit)
            break
        stats, lr_schedule = run_epoch(
            cfg, model, data, optimizer, scaler, lr_schedule, state, epoch, device, autocast, emit, budget
        )
        if stats is None:
            continue  # out of memory: the same epoch again with half the batch
        t_val = time.time()
        score, val_metrics = validate(
            cfg, model, data, stats.summary(), state, epoch, device, autocast, force=stats.stopped
        )
        if val_metrics:
            budget.val_s = time.time() - t_val
        if score is not None and _better(score, state.best):
            state.best, state.best_epoch, state.bad_epochs = score, epoch, 0
            if cfg.select_best:
                best = {"model": model.state_dict(), "epoch": epoch, "score": score}
                save_run_checkpoint(out_dir / "best.pth", "finetune-best", best)
        elif score is not None:
            state.bad_epochs += 1
        state.epoch_times.append(time.time() - t_ep)
        state.history.append(
            {
                "epoch": epoch,
                "train": stats.summary(),
                "val": val_metrics,
                "seconds": round(state.epoch_times[-1], 2),
            }
        )
        if stats.stopped:
            state.history[-1]["partial"] = {"steps": stats.steps}
            _budget_stop(state, budget, cfg, epoch, stats.steps, _epoch_steps(cfg, data, state), emit)
        save_run(ckpt_path, cfg, model, optimizer, scaler, state, epoch)
        emit(_epoch_event(cfg, state, epoch, score))
        epoch += 1
        if stats.stopped:
            break
        if stop_after_epochs and epoch - state.start_epoch >= stop_after_epochs and epoch < cfg.epochs:
            data.cache.close()
            emit({"event": "stopped", "epoch": epoch - 1, "checkpoint": str(ckpt_path)})
            return None
        if cfg.patience and state.bad_epochs >= cfg.patience and epoch < cfg.epochs:
            emit(
                {
                    "event": "early_stop",
                    "epoch": epoch - 1,
                    "best_epoch": state.best_epoch,
                    "monitor": cfg.monitor_metric,
                }
            )
            break

    # ============================== export =======================================================
    return export_run(cfg, model, data, state, plan, init_info, device, autocast, emit, t_start)


# ================================================================================================ the steps


def _epoch_steps(cfg: FinetuneConfig, data: RunData, state: RunState) -> int:
    return steps_per_epoch(cfg, len(data.train_ds), state.batch_size)


def _budget_stop(
    state: RunState,
    budget: TimeBudget,
    cfg: FinetuneConfig,
    epoch: int,
    step: int | None,
    steps: int | None,
    emit: Emit,
) -> None:
    """Records and announces the end of training by the time budget (``epoch``: the last one that ran; ``step`` of
    ``steps``: where it stopped inside it, None when it stopped between epochs)."""
    where = (
        f"after step {step}/{steps} of epoch {epoch + 1}" if step is not None else f"after epoch {epoch + 1}"
    )
    message = (
        f"time budget of {_minutes(budget.seconds)} reached: training stopped {where} of {cfg.epochs} "
        f"({budget.elapsed():.0f} s elapsed); the checkpoint is saved and the model trained so far is exported"
    )
    state.stopped = {
        "reason": "time budget",
        "budget_s": round(budget.seconds, 1),
        "elapsed_s": round(budget.elapsed(), 1),
        "epoch": epoch,
        "step": step,
        "steps": steps,
        "epochs_planned": cfg.epochs,
    }
    log.warning(message)
    emit({"event": "warning", "message": message})
    emit({"event": "budget_stop", **{k: state.stopped[k] for k in ("epoch", "step", "steps")},
          "elapsed_s": state.stopped["elapsed_s"], "budget_s": state.stopped["budget_s"], "message": message})  # fmt: skip


def _minutes(seconds: float) -> str:
    m = seconds / 60.0
    return f"{m:g} min" if m >= 1 else f"{seconds:.0f} s"


def read_resume(ckpt_path: Path, cfg: FinetuneConfig) -> tuple[dict[str, Any], FinetuneConfig]:
    """The run checkpoint to continue, and the run's own config (``cfg`` may only extend the epochs)."""
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{ckpt_path}: nothing to resume from (no checkpoint in {ckpt_path.parent})")
    resumed = load_run_checkpoint(ckpt_path, "finetune", RUN_KEYS)
    saved = FinetuneConfig.from_dict(resumed["config"])
    if saved.manifest != cfg.manifest:
        raise ValueError(
            f"{ckpt_path}: was trained on {saved.manifest}, not {cfg.manifest}; refusing to resume"
        )
    return resumed, saved.replace(epochs=max(cfg.epochs, saved.epochs))


def build_data(cfg: FinetuneConfig, parent=None, lineage: dict | None = None) -> RunData:
    """The datasets; with a ``parent`` (``core_model.loading.LoadedModel``) its head classes are kept where the
    labels allow (recorded in ``lineage["heads"]``)."""
    from core_model.data.manifest import load_manifest

    manifest = load_manifest(cfg.manifest)
    classes = resolve_classes(manifest, cfg.tasks)
    if parent is not None:
        classes = inherit_head_classes(cfg.tasks, classes, parent, lineage if lineage is not None else {})
    seqs = build_sequences(manifest, cfg.sequences)
    train_seqs = seqs.get("train", [])
    if not train_seqs:
        raise ValueError(f"{cfg.manifest}: no video in the 'train' split; assign splits before fine-tuning")
    val_seqs = seqs.get(cfg.val_split, []) if cfg.val_split else []
    test_seqs = seqs.get(cfg.test_split, []) if cfg.test_split and cfg.test_split != cfg.val_split else []
    check_files(train_seqs + val_seqs + test_seqs)
    cache = FrameCache()
    train_ds = ClipDataset(train_seqs, cfg, classes, train=True, cache=cache)
    val_ds = ClipDataset(val_seqs, cfg, classes, train=False, cache=cache) if val_seqs else None
    return RunData(manifest, classes, train_seqs, val_seqs, test_seqs, cache, train_ds, val_ds)


def build_model(
    cfg: FinetuneConfig, classes: dict, device: torch.device, parent=None
) -> tuple[torch.nn.Module, dict]:
    model, init_info = build_task_model(cfg, classes, parent=parent)
    if cfg.mode == "lora":
        n_lora = apply_lora(model.backbone, cfg.lora_rank, cfg.lora_alpha)
        log.info("LoRA: %d trainable adapter parameters; backbone frozen", n_lora)
    elif cfg.mode == "linear":
        freeze_backbone(model.backbone)
    return model.to(device), init_info


class _MemoryProbe:
    """One full training step (forward, backward, optimiser step) at a batch size, for ``plan_machine``."""

    def __init__(
        self, cfg: FinetuneConfig, model: torch.nn.Module, train_ds: ClipDataset, device: torch.device
    ):
        self.cfg, self.model, self.train_ds, self.device = cfg, model, train_ds, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(choose_amp(device, cfg.amp))

    def __call__(self, batch: int, gc_on: bool) -> None:
        cfg, model = self.cfg, self.model
        model.backbone.set_grad_checkpointing(gc_on)
        x = torch.zeros(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size, device=self.device)
        ds_batch = collate([self.train_ds[k % len(self.train_ds)] for k in range(batch)])
        ds_batch["clip"] = x
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
        with runtime.autocast(self.device, dtype=self.dtype):
            out = model(x)
        model.losses(out, make_targets(ds_batch, cfg.tasks, self.device))["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def plan_run_machine(
    cfg: FinetuneConfig,
    model: torch.nn.Module,
    train_ds: ClipDataset,
    device: torch.device,
    init_info: dict,
    resumed: dict | None,
) -> MachinePlan:
    """Precision, gradient checkpointing and batch size for this device (a resumed run keeps its batch)."""
    return plan_machine(
        device,
        init_info.get("arch") or cfg.arch,
        cfg.amp,
        cfg.grad_checkpointing,
        resumed["batch_size"] if resumed else cfg.batch_size,
        cfg.memory_budget_gb,
        probe=_MemoryProbe(cfg, model, train_ds, device) if device.type == "cuda" else None,
    )


def build_optimizer(cfg: FinetuneConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    nwd = {f"backbone.{n}" for n in getattr(model.backbone, "no_weight_decay", lambda: set())()}
    groups = S.param_groups_lrd(model, cfg.weight_decay, cfg.layer_decay, model.depth, nwd)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def steps_per_epoch(cfg: FinetuneConfig, n_clips: int, batch_size: int) -> int:
    n = -(-n_clips // batch_size)
    return min(n, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n


def make_schedule(cfg: FinetuneConfig, n_clips: int, batch_size: int) -> np.ndarray:
    """The learning rate of every iteration of the run at this batch size."""
    it = steps_per_epoch(cfg, n_clips, batch_size)
    total = cfg.epochs * it
    if cfg.schedule == "cosine":
        return S.cosine_scheduler(cfg.lr, cfg.min_lr, cfg.epochs, it, cfg.warmup_epochs)
    if cfg.schedule == "cosine_epoch":  # CosineAnnealingLR stepped per epoch (PolypDiag)
        return np.repeat(S.cosine_scheduler(cfg.lr, cfg.min_lr, cfg.epochs, 1), it)
    if cfg.schedule == "poly":
        return S.poly_scheduler(cfg.lr, total)
    ms = [int(round(f * total)) for f in cfg.milestones]
    return S.multistep_scheduler(cfg.lr, total, ms, cfg.gamma, int(round(cfg.warmup_epochs * it)))


def restore_run(
    resumed: dict[str, Any],
    where: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    state: RunState,
) -> None:
    """Every object of the run by name, then the RNG state: the continuation equals an uninterrupted run."""
    restore(resumed, where, model=model, optimizer=optimizer)
    if scaler is not None and resumed.get("scaler"):
        restore(resumed, where, scaler=scaler)
    state.start_epoch = int(resumed["epoch"]) + 1
    state.iteration = int(resumed["iteration"])
    state.history = list(resumed["history"])
    state.best, state.best_epoch = resumed["best"], int(resumed["best_epoch"])
    set_rng_state(resumed["rng"])


def save_run(
    path: Path,
    cfg: FinetuneConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    state: RunState,
    epoch: int,
) -> None:
    save_run_checkpoint(
        path,
        "finetune",
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch,
            "iteration": state.iteration,
            "config": cfg.to_dict(),
            # enough to rebuild the model without the parent (core_model.loading.load_model reads run checkpoints)
            "backbone_config": model.backbone.cfg.replace(grad_checkpointing=False).to_dict(),
            "head_configs": {t: h.config() for t, h in model.heads.items()},
            "lineage": state.lineage,
            "batch_size": state.batch_size,
            "history": state.history,
            "best": state.best,
            "best_epoch": state.best_epoch,
            "rng": rng_state(),
        },
    )


class _ProgressEvents:
    """``on_step`` of one epoch: a ``progress`` event at most every 0.5 s, with the run's ETA."""

    def __init__(
        self, emit: Emit, cfg: FinetuneConfig, state: RunState, epoch: int, budget: TimeBudget | None = None
    ) -> None:
        self.emit, self.cfg, self.state, self.epoch, self.budget = emit, cfg, state, epoch, budget
        self.t_ep = time.time()
        self.last = 0.0

    def __call__(self, i: int, n: int, loss: float, lr: float) -> None:
        if self.budget is not None:
            self.budget.step_done()
        now = time.time()
        if now - self.last < 0.5 and i + 1 < n:
            return
        self.last = now
        cfg, st = self.cfg, self.state
        per_step = (now - self.t_ep) / (i + 1)
        mean_epoch = np.mean(st.epoch_times) if st.epoch_times else per_step * n
        eta = (n - i - 1) * per_step + (cfg.epochs - self.epoch - 1) * mean_epoch
        done = self.epoch - st.start_epoch + (i + 1) / n
        self.emit(
            {
                "event": "progress",
                "epoch": self.epoch,
                "epochs": cfg.epochs,
                "step": i + 1,
                "steps": n,
                "loss": round(loss, 5),
                "lr": lr,
                "eta_s": round(float(eta), 1),
                "fraction": round(done / max(cfg.epochs - st.start_epoch, 1), 4),
            }
        )


def run_epoch(
    cfg: FinetuneConfig,
    model: torch.nn.Module,
    data: RunData,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    lr_schedule: np.ndarray,
    state: RunState,
    epoch: int,
    device: torch.device,
    autocast: Callable[[], Any],
    emit: Emit,
    budget: TimeBudget | None = None,
) -> tuple[Any, np.ndarray]:
    """One epoch -> (its ``StepStats``, the schedule); ``budget`` may end it early (``StepStats.stopped``). On
    CUDA out of memory: (None, the schedule rebuilt for half
    the batch at the same point of the run), with the RNG state as it was before the epoch."""
    data.train_ds.set_epoch(epoch)
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    loader = torch.utils.data.DataLoader(
        data.train_ds,
        batch_size=state.batch_size,
        sampler=torch.utils.data.RandomSampler(data.train_ds, generator=g),
        collate_fn=collate,
        num_workers=cfg.num_workers,
        drop_last=len(data.train_ds) > state.batch_size,
    )
    rng_before = rng_state()
    try:
        stats = train_one_epoch(
            model,
            loader,
            optimizer,
            lr_schedule,
            state.iteration,
            device,
            cfg.tasks,
            autocast,
            scaler,
            cfg.grad_clip,
            cfg.max_steps_per_epoch,
            _ProgressEvents(emit, cfg, state, epoch, budget),
            budget.should_stop if budget is not None and budget.active else None,
        )
    except Exception as exc:  # only an out-of-memory error is handled
        new_bs = halve_batch_on_oom(exc, state.batch_size, device)
        if new_bs is None:
            raise
        optimizer.zero_grad(set_to_none=True)
        message = (
            f"CUDA out of memory at batch {state.batch_size}; retrying epoch {epoch} with batch {new_bs}"
        )
        emit({"event": "warning", "message": message})
        log.warning(message)
        set_rng_state(rng_before)
        done_frac = state.iteration / max(len(lr_schedule), 1)
        state.batch_size = new_bs
        lr_schedule = make_schedule(cfg, len(data.train_ds), new_bs)
        state.iteration = int(round(done_frac * len(lr_schedule)))
        return None, lr_schedule
    state.iteration += (
        stats.steps if stats.stopped else steps_per_epoch(cfg, len(data.train_ds), state.batch_size)
    )
    return stats, lr_schedule


def validate(
    cfg: FinetuneConfig,
    model: torch.nn.Module,
    data: RunData,
    train_metrics: dict[str, float],
    state: RunState,
    epoch: int,
    device: torch.device,
    autocast: Callable[[], Any],
    force: bool = False,
) -> tuple[float | None, dict[str, float]]:
    """(the monitored score or None when not validated this epoch, the validation metrics); ``force``: validate
    whatever ``eval_every`` says (the last epoch of a run the time budget ended)."""
    due = force or (epoch + 1) % max(cfg.eval_every, 1) == 0 or epoch + 1 == cfg.epochs
    if data.val_ds is not None and not due:
        return None, {}  # neither best nor a reason to stop
    val_metrics: dict[str, float] = {}
    if data.val_ds is not None:
        val_metrics = evaluate(
            model, data.val_ds, device, autocast, batch_size=max(1, state.batch_size)
        ).metrics
    score = monitor_score(val_metrics, cfg.monitor_metric, cfg.tasks)
    return (-train_metrics["loss"] if score is None else score), val_metrics


def _start_event(cfg, out_dir, device, plan, init_info, data: RunData, state: RunState) -> dict:
    return {
        "event": "start",
        "out_dir": str(out_dir),
        "tasks": list(cfg.tasks),
        "preset": cfg.preset,
        "mode": cfg.mode,
        "device": str(device),
        "plan": plan.as_dict(),
        "init": init_info,
        "train_sequences": len(data.train_seqs),
        "val_sequences": len(data.val_seqs),
        "test_sequences": len(data.test_seqs),
        "train_clips_per_epoch": len(data.train_ds),
        "val_clips": len(data.val_ds) if data.val_ds is not None else 0,
        "lineage": state.lineage,
        "epochs": cfg.epochs,
        "start_epoch": state.start_epoch,
    }


def _epoch_event(cfg: FinetuneConfig, state: RunState, epoch: int, score: float | None) -> dict:
    last = state.history[-1]
    return {
        "event": "epoch",
        "epoch": epoch,
        "epochs": cfg.epochs,
        "train": last["train"],
        "val": last["val"],
        "monitor": cfg.monitor_metric,
        "score": score,
        "best": state.best,
        "best_epoch": state.best_epoch,
        "eta_s": round(float(np.mean(state.epoch_times)) * (cfg.epochs - epoch - 1), 1),
    }


def export_run(
    cfg: FinetuneConfig,
    model: torch.nn.Module,
    data: RunData,
    state: RunState,
    plan: MachinePlan,
    init_info: dict,
    device: torch.device,
    autocast: Callable[[], Any],
    emit: Emit,
    t_start: float,
) -> FinetuneResult:
    """The best (or last) weights, LoRA merged, evaluated, as a model directory with provenance + result.json."""
    out_dir = Path(cfg.out_dir)
    best_path = out_dir / "best.pth"
    use_best = cfg.select_best and best_path.exists()
    if use_best:
        restore(load_run_checkpoint(best_path, "finetune-best", ("model",)), best_path, model=model)
    if cfg.mode == "lora":
        merge_lora(model.backbone)
    model.backbone.set_grad_checkpointing(False)
    batch = max(1, state.batch_size)
    metrics: dict[str, dict[str, float]] = {}
    last = state.history[-1] if state.history else None
    exported_epoch = state.best_epoch if use_best else (last or {}).get("epoch")
    if last is not None and last["val"] and exported_epoch == last["epoch"] and cfg.mode != "lora":
        metrics["val"] = dict(last["val"])  # the weights exported are the ones just validated
    elif data.val_ds is not None:
        metrics["val"] = evaluate(model, data.val_ds, device, autocast, batch_size=batch).metrics
    if data.test_seqs:
        test_ds = ClipDataset(data.test_seqs, cfg, data.classes, train=False, cache=data.cache)
        metrics["test"] = evaluate(model, test_ds, device, autocast, batch_size=batch).metrics
    data.cache.close()
    seconds = time.time() - t_start
    provenance = {
        "kind": "finetune",
        "arch": init_info.get("arch", cfg.arch),
        "parent": init_info.get("source", ""),
        "manifest": str(Path(cfg.manifest).resolve()),
        "manifest_sha256_16": manifest_digest(cfg.manifest),
        "manifest_source": data.manifest.source,
        "config": cfg.to_dict(),
        "metrics": metrics,
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.history),
        "stopped": state.stopped or None,
        "time_budget_s": cfg.time_budget_s or None,
        "seconds": round(seconds, 1),
        "device": str(device),
        "plan": plan.as_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    model_dir = export_model_dir(
        model.cpu(),
        cfg,
        data.classes,
        out_dir / "model",
        provenance,
        fp16=cfg.export_fp16,
        lineage=state.lineage,
    )
    if cfg.calibrate_videos > 0 and "classification" in cfg.tasks and data.val_seqs:
        from core_model.inference.calibrate import calibrate_model

        try:
            cal = calibrate_model(
                model_dir,
                cfg.manifest,
                split=cfg.val_split,
                train_split=cfg.val_split,
                max_videos=cfg.calibrate_videos,
            )
            emit({"event": "calibrated", **cal})
            op = cal.get("operating_point") or {}
            if "val" in metrics:  # the screening figures of the served whole-video call, next to the engine's
                for k in ("sensitivity", "specificity", "threshold"):
                    if op.get(k) is not None:
                        metrics["val"][f"classification/{k}"] = float(op[k])
        except (OSError, ValueError, RuntimeError) as exc:  # the model stays usable with the default call
            emit({"event": "warning", "message": f"operating point not calibrated: {exc}"})
    result = FinetuneResult(str(model_dir), metrics, state.history, seconds, plan.as_dict())
    summary = {
        "model_dir": result.model_dir,
        "metrics": metrics,
        "history": state.history,
        "provenance": provenance,
    }
    (out_dir / "result.json").write_text(json.dumps(summary, indent=1, default=str))
    emit({"event": "done", "model_dir": str(model_dir), "metrics": metrics, "seconds": round(seconds, 1)})
    return result
