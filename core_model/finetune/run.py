"""``finetune(cfg, emit)``: one fine-tuning run, start to finish, reading like a recipe.

Events (``emit(dict)``; the CLI prints each as one JSON line):

- ``{"event": "start", "out_dir", "tasks", "device", "plan": {...}, "train_clips", "val_sequences", ...}``
- ``{"event": "progress", "epoch", "epochs", "step", "steps", "loss", "lr", "eta_s", "fraction"}`` (at most ~2/s)
- ``{"event": "epoch", "epoch", "train": {...}, "val": {...}, "monitor", "best", "best_epoch", "eta_s"}``
- ``{"event": "warning", "message"}`` (e.g. CUDA out of memory -> retrying the epoch with half the batch)
- ``{"event": "early_stop", "epoch", "best_epoch"}``
- ``{"event": "done", "model_dir", "metrics": {"val": {...}, "test": {...}}, "seconds"}``

Files in ``out_dir``: ``checkpoint.pth`` (every epoch, atomically: model, optimiser, scaler, epoch, iteration,
config, RNG states, history, best), ``best.pth`` (weights of the best epoch when ``select_best``), ``model/``
(the exported model directory, fp32 unless ``export_dtype`` says otherwise), ``result.json``.
``resume=True`` continues from ``checkpoint.pth`` with every object restored by name; the continuation is the same
run as one that was never interrupted (same seeds per epoch, same RNG state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
from core_model.finetune.engine import evaluate, train_one_epoch
from core_model.finetune.lora import apply_lora, freeze_backbone, merge_lora
from core_model.finetune.machine import MachinePlan, plan_machine
from core_model.finetune.modeling import build_task_model, export_model_dir
from core_model.training import (
    is_oom,
    load_run_checkpoint,
    restore,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
)

log = logging.getLogger(__name__)

Emit = Callable[[dict], None]


@dataclass
class FinetuneResult:
    model_dir: str
    metrics: dict[str, dict[str, float]]
    history: list[dict]
    seconds: float
    plan: dict


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


def _better(a: float, b: float | None) -> bool:
    return b is None or a > b


def manifest_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def finetune(
    cfg: FinetuneConfig, emit: Emit | None = None, resume: bool = False, stop_after_epochs: int = 0
) -> FinetuneResult | None:
    """Run (or, with ``resume``, continue) ``cfg``. ``stop_after_epochs``: end this call after N epochs without
    exporting (continue later with ``resume=True``); returns None then."""
    emit = emit or (lambda e: None)
    t_start = time.time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pth"
    resumed: dict | None = None
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"{ckpt_path}: nothing to resume from (no checkpoint in {out_dir})")
        resumed = load_run_checkpoint(ckpt_path, "finetune", RUN_KEYS)
        saved = FinetuneConfig.from_dict(resumed["config"])
        if saved.manifest != cfg.manifest:
            raise ValueError(
                f"{ckpt_path}: was trained on {saved.manifest}, not {cfg.manifest}; refusing to resume"
            )
        cfg = saved.replace(epochs=max(cfg.epochs, saved.epochs))

    # ============================== data =========================================================
    from core_model.data.manifest import load_manifest

    runtime.seed_everything(cfg.seed)
    manifest = load_manifest(cfg.manifest)
    classes = resolve_classes(manifest, cfg.tasks)
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

    # ============================== model ========================================================
    device = runtime.pick_device(cfg.device or None)
    model, init_info = build_task_model(cfg, classes)
    if cfg.mode == "lora":
        n_lora = apply_lora(model.backbone, cfg.lora_rank, cfg.lora_alpha)
        log.info("LoRA: %d trainable adapter parameters; backbone frozen", n_lora)
    elif cfg.mode == "linear":
        freeze_backbone(model.backbone)
    model.to(device)

    # ============================== machine ======================================================
    def probe(batch: int, gc_on: bool) -> None:
        model.backbone.set_grad_checkpointing(gc_on)
        x = torch.zeros(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size, device=device)
        ds_batch = collate([train_ds[k % len(train_ds)] for k in range(batch)])
        ds_batch["clip"] = x
        from core_model.finetune.engine import make_targets

        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
        with runtime.autocast(device, dtype=plan_dtype):
            out = model(x)
        model.losses(out, make_targets(ds_batch, cfg.tasks, device))["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del opt

    from core_model.finetune.machine import choose_amp

    plan_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(choose_amp(device, cfg.amp))
    plan: MachinePlan = plan_machine(
        device,
        cfg.arch if not init_info.get("arch") else init_info["arch"],
        cfg.amp,
        cfg.grad_checkpointing,
        resumed["batch_size"] if resumed else cfg.batch_size,
        cfg.memory_budget_gb,
        probe=probe if device.type == "cuda" else None,
    )
    runtime.seed_everything(cfg.seed)  # the probe must not change what the run draws
    model.backbone.set_grad_checkpointing(plan.grad_checkpointing)
    batch_size = plan.batch_size
    amp_dtype = plan.torch_dtype
    scaler = torch.amp.GradScaler("cuda") if plan.amp_dtype == "fp16" else None

    def autocast():
        return runtime.autocast(device, dtype=amp_dtype) if amp_dtype is not None else runtime.autocast("cpu")

    # ============================== optimiser and schedules ======================================
    depth = model.depth
    nwd = {f"backbone.{n}" for n in getattr(model.backbone, "no_weight_decay", lambda: set())()}
    groups = S.param_groups_lrd(model, cfg.weight_decay, cfg.layer_decay, depth, nwd)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    else:
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)

    def steps_per_epoch(bs: int) -> int:
        n = -(-len(train_ds) // bs)
        return min(n, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n

    def make_schedule(bs: int) -> np.ndarray:
        it = steps_per_epoch(bs)
        total = cfg.epochs * it
        if cfg.schedule == "cosine":
            return S.cosine_scheduler(cfg.lr, cfg.min_lr, cfg.epochs, it, cfg.warmup_epochs)
        if cfg.schedule == "cosine_epoch":  # CosineAnnealingLR stepped per epoch (PolypDiag)
            per_ep = cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (
                1 + np.cos(np.pi * np.arange(cfg.epochs) / cfg.epochs)
            )
            return np.repeat(per_ep, it)
        if cfg.schedule == "poly":
            return S.poly_scheduler(cfg.lr, total)
        ms = [int(round(f * total)) for f in cfg.milestones]
        return S.multistep_scheduler(cfg.lr, total, ms, cfg.gamma, int(round(cfg.warmup_epochs * it)))

    start_epoch, iteration = 0, 0
    history: list[dict] = []
    best: float | None = None
    best_epoch = -1
    if resumed is not None:
        restore(resumed, ckpt_path, model=model, optimizer=optimizer)
        if scaler is not None and resumed.get("scaler"):
            restore(resumed, ckpt_path, scaler=scaler)
        start_epoch = int(resumed["epoch"]) + 1
        iteration = int(resumed["iteration"])
        history = list(resumed["history"])
        best, best_epoch = resumed["best"], int(resumed["best_epoch"])
        set_rng_state(resumed["rng"])
        emit({"event": "resumed", "epoch": start_epoch, "checkpoint": str(ckpt_path)})
    lr_schedule = make_schedule(batch_size)
    emit(
        {
            "event": "start",
            "out_dir": str(out_dir),
            "tasks": list(cfg.tasks),
            "preset": cfg.preset,
            "mode": cfg.mode,
            "device": str(device),
            "plan": plan.as_dict(),
            "init": init_info,
            "train_sequences": len(train_seqs),
            "val_sequences": len(val_seqs),
            "test_sequences": len(test_seqs),
            "train_clips_per_epoch": len(train_ds),
            "epochs": cfg.epochs,
            "start_epoch": start_epoch,
        }
    )

    # ============================== training loop ================================================
    monitor = cfg.monitor_metric
    epoch_times: list[float] = []
    bad_epochs = 0
    last_emit = [0.0]
    epoch = start_epoch
    while epoch < cfg.epochs:
        t_ep = time.time()
        train_ds.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            train_ds,
            batch_size=batch_size,
            sampler=torch.utils.data.RandomSampler(train_ds, generator=g),
            collate_fn=collate,
            num_workers=cfg.num_workers,
            drop_last=len(train_ds) > batch_size,
        )
        n_steps = steps_per_epoch(batch_size)
        rng_before = rng_state()

        def on_step(i: int, n: int, loss: float, lr: float, epoch: int = epoch, t_ep: float = t_ep) -> None:
            now = time.time()
            if now - last_emit[0] < 0.5 and i + 1 < n:
                return
            last_emit[0] = now
            per_step = (now - t_ep) / (i + 1)
            done_epochs = epoch - start_epoch
            mean_epoch = np.mean(epoch_times) if epoch_times else per_step * n
            eta = (n - i - 1) * per_step + (cfg.epochs - epoch - 1) * mean_epoch
            emit(
                {
                    "event": "progress",
                    "epoch": epoch,
                    "epochs": cfg.epochs,
                    "step": i + 1,
                    "steps": n,
                    "loss": round(loss, 5),
                    "lr": lr,
                    "eta_s": round(float(eta), 1),
                    "fraction": round((done_epochs + (i + 1) / n) / max(cfg.epochs - start_epoch, 1), 4),
                }
            )

        try:
            stats = train_one_epoch(
                model,
                loader,
                optimizer,
                lr_schedule,
                iteration,
                device,
                cfg.tasks,
                autocast,
                scaler,
                cfg.grad_clip,
                cfg.max_steps_per_epoch,
                on_step,
            )
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc) or batch_size == 1:
                raise
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            new_bs = max(1, batch_size // 2)
            emit(
                {
                    "event": "warning",
                    "message": f"CUDA out of memory at batch {batch_size}; retrying epoch {epoch} with batch {new_bs}",
                }
            )
            log.warning("CUDA out of memory at batch %d; retrying with %d", batch_size, new_bs)
            batch_size = new_bs
            set_rng_state(rng_before)
            done_frac = iteration / max(len(lr_schedule), 1)
            lr_schedule = make_schedule(batch_size)
            iteration = int(round(done_frac * len(lr_schedule)))
            continue
        iteration += n_steps
        train_metrics = stats.summary()
        val_metrics: dict[str, float] = {}
        due = (epoch + 1) % max(cfg.eval_every, 1) == 0 or epoch + 1 == cfg.epochs
        if val_ds is not None and due:
            val_metrics = evaluate(model, val_ds, device, autocast, batch_size=max(1, batch_size)).metrics
        if val_ds is not None and not due:
            score = None  # not validated this epoch: neither best nor a reason to stop
        else:
            score = monitor_score(val_metrics, monitor, cfg.tasks)
            if score is None:
                score = -train_metrics["loss"]
        improved = score is not None and _better(score, best)
        if improved:
            best, best_epoch, bad_epochs = score, epoch, 0
            if cfg.select_best:
                save_run_checkpoint(
                    out_dir / "best.pth",
                    "finetune-best",
                    {"model": model.state_dict(), "epoch": epoch, "score": score},
                )
        elif score is not None:
            bad_epochs += 1
        epoch_times.append(time.time() - t_ep)
        record = {
            "epoch": epoch,
            "train": train_metrics,
            "val": val_metrics,
            "seconds": round(epoch_times[-1], 2),
        }
        history.append(record)
        save_run_checkpoint(
            ckpt_path,
            "finetune",
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch,
                "iteration": iteration,
                "config": cfg.to_dict(),
                "batch_size": batch_size,
                "history": history,
                "best": best,
                "best_epoch": best_epoch,
                "rng": rng_state(),
            },
        )
        eta = float(np.mean(epoch_times)) * (cfg.epochs - epoch - 1)
        emit(
            {
                "event": "epoch",
                "epoch": epoch,
                "epochs": cfg.epochs,
                "train": train_metrics,
                "val": val_metrics,
                "monitor": monitor,
                "score": score,
                "best": best,
                "best_epoch": best_epoch,
                "eta_s": round(eta, 1),
            }
        )
        epoch += 1
        if stop_after_epochs and epoch - start_epoch >= stop_after_epochs and epoch < cfg.epochs:
            cache.close()
            emit({"event": "stopped", "epoch": epoch - 1, "checkpoint": str(ckpt_path)})
            return None
        if cfg.patience and bad_epochs >= cfg.patience and epoch < cfg.epochs:
            emit({"event": "early_stop", "epoch": epoch - 1, "best_epoch": best_epoch, "monitor": monitor})
            break

    # ============================== export =======================================================
    if cfg.select_best and (out_dir / "best.pth").exists():
        best_ckpt = load_run_checkpoint(out_dir / "best.pth", "finetune-best", ("model",))
        restore(best_ckpt, out_dir / "best.pth", model=model)
    if cfg.mode == "lora":
        merge_lora(model.backbone)
    model.backbone.set_grad_checkpointing(False)
    metrics: dict[str, dict[str, float]] = {}
    last = history[-1] if history else None
    exported_epoch = (
        best_epoch if cfg.select_best and (out_dir / "best.pth").exists() else (last or {}).get("epoch")
    )
    if last is not None and last["val"] and exported_epoch == last["epoch"] and cfg.mode != "lora":
        metrics["val"] = dict(last["val"])  # the weights exported are the ones just validated
    elif val_ds is not None:
        metrics["val"] = evaluate(model, val_ds, device, autocast, batch_size=max(1, batch_size)).metrics
    if test_seqs:
        test_ds = ClipDataset(test_seqs, cfg, classes, train=False, cache=cache)
        metrics["test"] = evaluate(model, test_ds, device, autocast, batch_size=max(1, batch_size)).metrics
    cache.close()
    seconds = time.time() - t_start
    provenance = {
        "kind": "finetune",
        "arch": init_info.get("arch", cfg.arch),
        "parent": init_info.get("source", ""),
        "manifest": str(Path(cfg.manifest).resolve()),
        "manifest_sha256_16": manifest_digest(cfg.manifest),
        "manifest_source": manifest.source,
        "config": cfg.to_dict(),
        "metrics": metrics,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "seconds": round(seconds, 1),
        "device": str(device),
        "plan": plan.as_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    model_dir = export_model_dir(
        model.cpu(), cfg, classes, out_dir / "model", provenance, fp16=cfg.export_fp16
    )
    result = FinetuneResult(str(model_dir), metrics, history, seconds, plan.as_dict())
    (out_dir / "result.json").write_text(
        json.dumps(
            {"model_dir": result.model_dir, "metrics": metrics, "history": history, "provenance": provenance},
            indent=1,
            default=str,
        )
    )
    emit({"event": "done", "model_dir": str(model_dir), "metrics": metrics, "seconds": round(seconds, 1)})
    return result
