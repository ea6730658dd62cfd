"""Fine-tuning throughput: clips/s and peak memory of one training step (forward, loss, backward, AdamW step) for
``endofm_base`` with each task head, ours vs the naive reference, in the same run.

* ``ours``: ``core_model.models.EndoFM`` (SDPA attention, copy-free layout) under bf16 autocast - what
  ``endofm finetune`` runs on a GPU - with the project's heads (``core_model.heads``).
* ``reference``: ``core_model.models.reference.ReferenceEndoFM`` (the official code path written plainly:
  explicit softmax attention, einops, CLS concatenated into every tensor) with the same heads, under the same
  precision, so the ratio isolates the backbone implementation. fp32 rows are given for both as well.

Input per head (stated, as the issue asks): classification 8x224x224 (PolypDiag), segmentation 8x224x224 (our
per-frame decoder), detection 3x448x448 (KUMC uses T=3; 448 instead of 640 keeps batch 8 comparable). Batch 8.
The GPU bar: ours >= 1.7x reference clips/s at no more peak memory, and batch 8 fitting in 12 GB (checked with
``torch.cuda.set_per_process_memory_fraction`` at 12 GiB and the fine-tuning engine's own machine plan).

``--small``: CPU check of every code path in about a minute: ``endofm_tiny`` at 4x112 (batch 2), fp32, all
heads, both implementations. GPU figures are pending where no GPU was available.

Output: one JSON object per line (``row`` per measurement, ``fit`` per head), then a ``summary`` naming the machine.
Medians over the timed iterations.

    python benchmarks/finetune_throughput.py            # GPU, full size
    python benchmarks/finetune_throughput.py --small    # CPU check
"""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import benchmark_parser, machine_name

from core_model.heads import EndoFMTaskModel, build_head
from core_model.models import EndoFM, get_config
from core_model.models.reference import ReferenceEndoFM

HEAD_CFG = {
    "classification": {"classes": ["normal", "abnormal"]},
    "segmentation": {"classes": ["polyp"]},
    "detection": {"classes": ["adenomatous", "hyperplastic"]},
}


def build(arch: str, impl: str, task: str, device: torch.device) -> EndoFMTaskModel:
    cfg = get_config(arch)
    backbone = EndoFM(cfg) if impl == "ours" else ReferenceEndoFM(cfg)
    head = build_head(task, HEAD_CFG[task], cfg.embed_dim, cfg.patch_size, cfg.depth)
    return EndoFMTaskModel(backbone, {task: head}).to(device).train()


def targets(task: str, b: int, t: int, size: int, device: torch.device) -> Any:
    g = torch.Generator().manual_seed(0)
    if task == "classification":
        return torch.randint(0, 2, (b,), generator=g).to(device)
    if task == "segmentation":
        m = torch.zeros(b, t, size, size, dtype=torch.long)
        m[:, :, size // 4 : size // 2, size // 3 : size // 2] = 1
        return m.to(device)
    box = torch.tensor([[size * 0.25, size * 0.3, size * 0.55, size * 0.6]], device=device)
    return [{"boxes": box, "labels": torch.zeros(1, dtype=torch.long, device=device)} for _ in range(b * t)]


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_fn(model: EndoFMTaskModel, task: str, x: torch.Tensor, tg: Any, opt, device, precision: str):
    def step() -> None:
        with autocast(device, precision):
            out = model(x)
        loss = model.losses(out, {task: tg})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(arch, impl, task, precision, batch, frames, size, iters, warmup, device) -> dict[str, Any]:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    row: dict[str, Any] = {
        "event": "row",
        "arch": arch,
        "impl": impl,
        "task": task,
        "precision": precision,
        "batch": batch,
        "input": f"{frames}x{size}x{size}",
    }
    try:
        model = build(arch, impl, task, device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        x = torch.randn(batch, 3, frames, size, size, device=device)
        step = step_fn(model, task, x, targets(task, batch, frames, size, device), opt, device, precision)
        for _ in range(warmup):
            step()
        sync(device)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            step()
            sync(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        row.update(clips_per_s=round(batch / med, 3), step_s=round(med, 4))
        row["peak_gib"] = (
            round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None
        )
    except torch.OutOfMemoryError:
        row.update(error="out of memory")
    finally:
        model = opt = x = step = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def fit_12gb(arch: str, task: str, frames: int, size: int, device: torch.device) -> dict[str, Any]:
    """Batch 8 under a 12 GiB cap (set_per_process_memory_fraction) and the engine's machine plan for 12 GiB."""
    from core_model.finetune.machine import plan_machine

    total = torch.cuda.get_device_properties(device).total_memory
    frac = min(1.0, 12 * 2**30 / total)
    torch.cuda.set_per_process_memory_fraction(frac, device)
    out: dict[str, Any] = {
        "event": "fit",
        "arch": arch,
        "task": task,
        "input": f"{frames}x{size}x{size}",
        "cap_gib": 12,
    }
    try:
        model = build(arch, "ours", task, device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def probe(b: int, gc_on: bool) -> None:
            model.backbone.set_grad_checkpointing(gc_on)
            x = torch.randn(b, 3, frames, size, size, device=device)
            step_fn(model, task, x, targets(task, b, frames, size, device), opt, device, "bf16")()

        plan = plan_machine(device, arch, "bf16", "auto", 0, 12.0, probe=probe)
        out["plan"] = plan.as_dict()
        for gc_on in (False, True):
            torch.cuda.reset_peak_memory_stats(device)
            try:
                probe(8, gc_on)
                sync(device)
                out[f"batch8_gc_{'on' if gc_on else 'off'}_peak_gib"] = round(
                    torch.cuda.max_memory_allocated(device) / 2**30, 3
                )
            except torch.OutOfMemoryError:
                out[f"batch8_gc_{'on' if gc_on else 'off'}_peak_gib"] = "out of memory"
            gc.collect()
            torch.cuda.empty_cache()
        out["batch8_fits"] = any(isinstance(v, float) for k, v in out.items() if k.startswith("batch8_"))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        gc.collect()
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "CPU-sized check (endofm_tiny, 4x112, batch 2)")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--tasks", default="classification,segmentation,detection")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.small else "cpu"))
    torch.manual_seed(0)
    tasks = [t for t in args.tasks.split(",") if t]
    if args.small:
        arch, batch, iters, warmup = "endofm_tiny", 2, args.iters or 3, args.warmup or 1
        shapes = {t: (4, 112) for t in tasks}
        precisions = ["fp32"]
    else:
        arch, batch, iters, warmup = "endofm_base", 8, args.iters or 10, args.warmup or 3
        shapes = {"classification": (8, 224), "segmentation": (8, 224), "detection": (3, 448)}
        precisions = ["bf16", "fp32"] if device.type == "cuda" else ["fp32"]
    rows = []
    for task in tasks:
        frames, size = shapes[task]
        for precision in precisions:
            for impl in ("reference", "ours"):
                row = measure(arch, impl, task, precision, batch, frames, size, iters, warmup, device)
                rows.append(row)
                print(json.dumps(row), flush=True)
    fits = []
    if device.type == "cuda" and not args.small:
        for task in tasks:
            f = fit_12gb(arch, task, *shapes[task], device)
            fits.append(f)
            print(json.dumps(f), flush=True)
    ratios = {}
    for task in tasks:
        for precision in precisions:
            r = {x["impl"]: x for x in rows if x["task"] == task and x["precision"] == precision}
            if "clips_per_s" in r.get("ours", {}) and "clips_per_s" in r.get("reference", {}):
                key = f"{task}/{precision}"
                ratios[key] = {
                    "speedup": round(r["ours"]["clips_per_s"] / r["reference"]["clips_per_s"], 3),
                    "ours_clips_per_s": r["ours"]["clips_per_s"],
                    "reference_clips_per_s": r["reference"]["clips_per_s"],
                    "ours_peak_gib": r["ours"]["peak_gib"],
                    "reference_peak_gib": r["reference"]["peak_gib"],
                }
    headline = "bf16" if "bf16" in precisions else precisions[0]
    summary = {
        "event": "summary",
        "machine": machine_name(device),
        "device": str(device),
        "torch": torch.__version__,
        "arch": arch,
        "batch": batch,
        "inputs": {t: f"{shapes[t][0]}x{shapes[t][1]}x{shapes[t][1]}" for t in tasks},
        "ratios": ratios,
        "bar": "GPU: ours >= 1.7x reference clips/s (bf16) at no more peak memory; batch 8 fits in 12 GB",
        "bar_met": (
            all(
                v["speedup"] >= 1.7 and (v["ours_peak_gib"] or 0) <= (v["reference_peak_gib"] or 0)
                for k, v in ratios.items()
                if k.endswith(headline)
            )
            and all(f.get("batch8_fits") for f in fits)
            if device.type == "cuda" and not args.small
            else "pending (no GPU in this run)"
        ),
        "fits_12gb": {f["task"]: f.get("batch8_fits") for f in fits} or "pending (GPU only)",
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
