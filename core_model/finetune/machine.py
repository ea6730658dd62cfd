"""Fit a fine-tuning run to the machine: mixed precision, gradient checkpointing and batch size.

* CPU: fp32, no checkpointing, a batch from the model size (tiny 4, small 2, base 1) - and a warning for
  ``endofm_base``, which is impractically slow there.
* CUDA: bf16 where supported (fp16 + GradScaler otherwise). The batch size is **measured**, not guessed: one
  training step at batch 1 and one at batch 2 give the fixed and the per-clip peak memory
  (``torch.cuda.max_memory_allocated``); the batch is the largest that fits ``budget * 0.85``, capped at
  ``max_batch``. If even batch 1 does not fit without gradient checkpointing, checkpointing is turned on and the
  probe repeats. ``memory_budget_gb`` caps the budget below the card's memory (what a 12 GB card would allow).
* ``is_oom`` recognises CUDA out-of-memory errors so the training loop can retry with half the batch.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core_model.training import is_oom  # the one home; re-exported

log = logging.getLogger(__name__)

CPU_BATCH = {"endofm_tiny": 4, "endofm_small": 2, "endofm_base": 1}


@dataclass(frozen=True)
class MachinePlan:
    device: str
    amp_dtype: str  # "bf16" | "fp16" | "fp32"
    grad_checkpointing: bool
    batch_size: int
    budget_bytes: int = 0
    fixed_bytes: int = 0
    per_clip_bytes: int = 0
    note: str = ""

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp_dtype)

    def as_dict(self) -> dict:
        return {
            "device": self.device,
            "amp": self.amp_dtype,
            "grad_checkpointing": self.grad_checkpointing,
            "batch_size": self.batch_size,
            "budget_gb": round(self.budget_bytes / 2**30, 2),
            "fixed_gb": round(self.fixed_bytes / 2**30, 3),
            "per_clip_gb": round(self.per_clip_bytes / 2**30, 3),
            "note": self.note,
        }


def choose_amp(device: torch.device, amp: str) -> str:
    if device.type != "cuda" or amp == "off":
        return "fp32"
    if amp == "fp16":
        return "fp16"
    if amp == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise RuntimeError("bf16 requested but this GPU does not support it; use --amp fp16 or auto")
        return "bf16"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def budget_bytes(device: torch.device, memory_budget_gb: float) -> int:
    total = torch.cuda.get_device_properties(device).total_memory
    if memory_budget_gb > 0:
        return min(total, int(memory_budget_gb * 2**30))
    return total


def plan_machine(
    device: torch.device,
    arch: str,
    amp: str = "auto",
    grad_checkpointing: str = "auto",
    batch_size: int = 0,
    memory_budget_gb: float = 0.0,
    probe: Callable[[int, bool], None] | None = None,
    max_batch: int = 16,
) -> MachinePlan:
    """Choose the run's precision, checkpointing and batch. ``probe(batch, checkpointing)`` runs one full training
    step (forward, backward, optimiser step) at that batch; it is only called on CUDA when ``batch_size`` is 0."""
    dtype = choose_amp(device, amp)
    if device.type != "cuda":
        gc_on = grad_checkpointing == "on"
        bs = batch_size or CPU_BATCH.get(arch, 2)
        note = ""
        if arch == "endofm_base":
            note = "endofm_base on a CPU is very slow (minutes per step); endofm_tiny or endofm_small are meant for CPUs"
            log.warning(note)
        return MachinePlan(str(device), dtype, gc_on, bs, note=note)
    budget = budget_bytes(device, memory_budget_gb)
    usable = int(budget * 0.85)
    if batch_size or probe is None:
        gc_on = grad_checkpointing == "on" or (grad_checkpointing == "auto" and arch == "endofm_base")
        return MachinePlan(str(device), dtype, gc_on, batch_size or 1, budget)
    options = {"on": [True], "off": [False], "auto": [False, True]}[grad_checkpointing]
    last_err: BaseException | None = None
    fallback: MachinePlan | None = None
    for gc_on in options:
        try:
            p1 = _measure(device, probe, 1, gc_on)
        except Exception as exc:  # OOM at the probe means "does not fit"
            if not is_oom(exc):
                raise
            last_err = exc
            _free(device)
            continue
        if p1 > usable:
            last_err = RuntimeError(f"batch 1 needs {p1 / 2**30:.2f} GiB > {usable / 2**30:.2f} GiB usable")
            continue
        try:
            p2 = _measure(device, probe, 2, gc_on)
        except Exception as exc:
            if not is_oom(exc):
                raise
            _free(device)
            fallback = fallback or MachinePlan(
                str(device), dtype, gc_on, 1, budget, p1, p1, "batch 2 did not fit"
            )
            continue
        per_clip = max(p2 - p1, 1)
        fixed = max(p1 - per_clip, 0)
        bs = int(max(1, min(max_batch, (usable - fixed) // per_clip)))
        if bs == 1 and fallback is not None:
            return fallback
        note = f"measured: {fixed / 2**30:.2f} GiB fixed + {per_clip / 2**30:.2f} GiB per clip"
        log.info("machine plan: batch %d, %s, checkpointing %s (%s)", bs, dtype, gc_on, note)
        return MachinePlan(str(device), dtype, gc_on, bs, budget, fixed, per_clip, note)
    if fallback is not None:
        return fallback
    raise RuntimeError(
        f"{arch} does not fit in {budget / 2**30:.1f} GiB even at batch 1 with gradient checkpointing "
        f"({last_err}); lower --img-size / --num-frames or use --mode lora"
    )


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _measure(device: torch.device, probe: Callable[[int, bool], None], batch: int, gc_on: bool) -> int:
    _free(device)
    torch.cuda.reset_peak_memory_stats(device)
    probe(batch, gc_on)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    _free(device)
    return int(peak)
