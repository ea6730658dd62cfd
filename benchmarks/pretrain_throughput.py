"""Pretraining step throughput: ours vs a naive reference step written like the official ``train_ssl.py``.

One step = teacher forward on the 2 global views, student forward on all 10 views (grouped into backbone passes as
reference §3.4: [g1], [g2], [l1,l2], [l3,l4], [l5,l6], [l7,l8]), DINO loss over 18 pairs, backward, per-parameter
gradient clipping at 3.0, last-layer handling, AdamW, EMA teacher update. Inputs are random tensors of the exact view
shapes, so the figure is the model step alone (decoding runs in DataLoader workers).

- ``reference``: ``ReferenceEndoFM`` (explicit softmax attention, einops; the official code path), fp16 autocast +
  GradScaler, the official DINO loss loop, per-parameter clipping with a ``.item()`` per tensor and the EMA as Python
  loops, ``AdamW(foreach=False)``.
- ``ours``: ``EndoFM`` (SDPA attention), bf16 autocast where supported (fp16 + scaler otherwise, fp32 on CPU), the
  training code's loss / ``torch._foreach`` clipping / foreach EMA, fused AdamW on CUDA.
- ``ours+ckpt``: ``ours`` with gradient checkpointing of the student backbone blocks.

Full size (GPU): ``endofm_base``, globals 2x(8|16)x224, locals 8x96 at 2/2/4/4/8/8/16/16 frames, DINO head
out_dim 65536, batch 8 (``--batch``). ``--small``: a CPU check of every code path in about a minute (a 2-block
192-wide backbone, 64/32-px views, out_dim 4096, batch 2).

Output: one JSON object per line per variant and a final ``{"event": "summary"}`` naming the machine with
clips/s, peak memory (``torch.cuda.max_memory_allocated``; null on CPU) and the ratios the issue's bar asks for
(≥ 2x the reference's clips/s at ≤ 60% of its peak memory). Medians over the timed steps.

    python benchmarks/pretrain_throughput.py            # GPU, full size
    python benchmarks/pretrain_throughput.py --small    # CPU check
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import benchmark_parser, machine_name

from core_model import runtime
from core_model.models import EndoFM, get_config
from core_model.models.reference import ReferenceEndoFM
from core_model.pretrain.head import DINOHead, MultiCropWrapper
from core_model.pretrain.loss import DINOLoss
from core_model.pretrain.optim import ema_update, param_groups, student_update


def make_views(batch: int, spec: dict[str, Any], device: torch.device) -> list[torch.Tensor]:
    g, loc = spec["global_size"], spec["local_size"]
    shapes = [(f, g) for f in spec["global_frames"]] + [(f, loc) for f in spec["local_frames"]]
    return [torch.randn(batch, 3, t, s, s, device=device) for t, s in shapes]


# ===================================================================================== the naive reference step


def _ref_clip(model: nn.Module, clip: float) -> None:
    for p in model.parameters():  # official utils.clip_gradients
        if p.grad is not None:
            norm = p.grad.data.norm(2)
            coef = clip / (norm.item() + 1e-6)
            if coef < 1:
                p.grad.data.mul_(coef)


def _ref_loss(student_out, teacher_out, center, n_views, temp=0.04, student_temp=0.1):
    s = (student_out / student_temp).chunk(n_views)
    t = F.softmax((teacher_out - center) / temp, dim=-1).detach().chunk(2)
    total, n = 0.0, 0
    for iq, q in enumerate(t):
        for v in range(n_views):
            if v == iq:
                continue
            total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
            n += 1
    with torch.no_grad():
        center.mul_(0.9).add_(teacher_out.sum(0, keepdim=True) / teacher_out.shape[0], alpha=0.1)
    return total / n


def reference_step(
    arch_cfg, head_kw, device, n_views
) -> tuple[Callable[[list[torch.Tensor]], float], nn.Module]:
    student = MultiCropWrapper(ReferenceEndoFM(arch_cfg), DINOHead(arch_cfg.embed_dim, **head_kw)).to(device)
    teacher = MultiCropWrapper(ReferenceEndoFM(arch_cfg), DINOHead(arch_cfg.embed_dim, **head_kw)).to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW(param_groups(student), foreach=False)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    center = torch.zeros(1, head_kw["out_dim"], device=device)

    def step(views: list[torch.Tensor]) -> float:
        ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else runtime.autocast(device)
        with ctx:
            teacher_out = torch.cat([teacher(v) for v in views[:2]])  # teacher: each global view separately
            student_out = student(views)
            loss = _ref_loss(student_out.float(), teacher_out.float(), center, n_views)
        if not np.isfinite(loss.item()):
            raise RuntimeError("reference loss is not finite")
        opt.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        _ref_clip(student, 3.0)  # (timed after epoch 0: cancel_gradients_last_layer keeps every gradient)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        with torch.no_grad():
            m = 0.996
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.data.mul_(m).add_((1 - m) * ps.detach().data)
        return float(loss.item())

    return step, student


# ===================================================================================== ours


def ours_step(arch_cfg, head_kw, device, n_views, grad_ckpt: bool):
    student = MultiCropWrapper(EndoFM(arch_cfg), DINOHead(arch_cfg.embed_dim, **head_kw)).to(device)
    teacher = MultiCropWrapper(EndoFM(arch_cfg), DINOHead(arch_cfg.embed_dim, **head_kw)).to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    if grad_ckpt:
        student.backbone.set_grad_checkpointing(True)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(param_groups(student), fused=fused, foreach=None if fused else True)
    amp = runtime.amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 and device.type == "cuda" else None
    loss_fn = DINOLoss(head_kw["out_dim"], n_views, np.full(1, 0.04)).to(device)
    s_params = list(student.parameters())
    t_params = list(teacher.parameters())

    def step(views: list[torch.Tensor]) -> float:
        with runtime.autocast(device):
            with torch.no_grad():
                teacher_out = teacher(views[:2])
            student_out = student(views)
        loss = loss_fn(student_out, teacher_out, 0)
        if not torch.isfinite(loss):
            raise RuntimeError("loss is not finite")
        student_update(loss, opt, scaler, student, clip_grad=3.0, epoch=1, freeze_last_layer=1)
        ema_update(t_params, s_params, 0.996)
        return float(loss.item())

    return step, student


# ===================================================================================== timing


def measure(name: str, build, views, device, warmup: int, iters: int) -> dict[str, Any]:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step, model = build()
    times = []
    try:
        for i in range(warmup + iters):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            loss = step(views)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    except torch.OutOfMemoryError as exc:
        row = {"event": "row", "variant": name, "error": f"out of memory: {str(exc)[:200]}"}
        del model, step
        return row
    batch = views[0].shape[0]
    med = statistics.median(times)
    row = {
        "event": "row",
        "variant": name,
        "batch": batch,
        "step_s_median": med,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "clips_per_s": batch / med,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "loss": loss,
    }
    del model, step
    return row


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "CPU-sized check of every code path (~1 min)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--variants", default="reference,ours,ours+ckpt")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (--small default: 1)")
    args = ap.parse_args(argv)
    threads = args.threads or (1 if args.small else None)
    if threads:
        torch.set_num_threads(
            threads
        )  # small CPU shapes on a shared machine: fewer threads, steadier timings
    device = runtime.pick_device(args.device)
    torch.manual_seed(0)
    if args.small:
        arch = get_config("endofm_base", embed_dim=192, depth=2, num_heads=3, img_size=64, drop_path_rate=0.1)
        spec = dict(
            global_size=64, local_size=32, global_frames=[4, 8], local_frames=[2, 2, 2, 2, 4, 4, 4, 4]
        )
        head_kw = dict(out_dim=4096, hidden_dim=512, bottleneck_dim=128)
        batch, iters, warmup = args.batch or 2, args.iters or 3, args.warmup or 1
    else:
        arch = get_config("endofm_base")
        spec = dict(
            global_size=224, local_size=96, global_frames=[8, 16], local_frames=[2, 2, 4, 4, 8, 8, 16, 16]
        )
        head_kw = dict(out_dim=65536, hidden_dim=2048, bottleneck_dim=256)
        batch, iters, warmup = args.batch or 8, args.iters or 10, args.warmup or 3
    n_views = 2 + len(spec["local_frames"])
    views = make_views(batch, spec, device)
    builders = {
        "reference": lambda: reference_step(arch, head_kw, device, n_views),
        "ours": lambda: ours_step(arch, head_kw, device, n_views, grad_ckpt=False),
        "ours+ckpt": lambda: ours_step(arch, head_kw, device, n_views, grad_ckpt=True),
    }
    rows = {}
    for name in args.variants.split(","):
        row = measure(name, builders[name], views, device, warmup, iters)
        row.update(
            {"device": str(device), "amp": "fp16" if name == "reference" and device.type == "cuda" else None}
        )
        if name != "reference":
            amp = runtime.amp_dtype(device)
            row["amp"] = str(amp).replace("torch.", "") if amp else "fp32"
        elif device.type != "cuda":
            row["amp"] = "fp32"
        rows[name] = row
        print(json.dumps(row), flush=True)

    summary: dict[str, Any] = {
        "event": "summary",
        "machine": machine_name(device),
        "device": str(device),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "mode": "small" if args.small else "full",
        "batch": batch,
        "views": spec,
        "out_dim": head_kw["out_dim"],
    }
    ref = rows.get("reference")
    for name, row in rows.items():
        summary[f"{name}_clips_per_s"] = row.get("clips_per_s")
        summary[f"{name}_peak_mem_gib"] = row.get("peak_mem_gib")
        if name == "reference" or not ref or "clips_per_s" not in ref or "clips_per_s" not in row:
            continue
        speed = row["clips_per_s"] / ref["clips_per_s"]
        summary[f"{name}_speedup"] = speed
        mem = None
        if row.get("peak_mem_gib") is not None and ref.get("peak_mem_gib"):
            mem = row["peak_mem_gib"] / ref["peak_mem_gib"]
        summary[f"{name}_mem_ratio"] = mem
        summary[f"{name}_meets_bar"] = bool(speed >= 2.0 and mem is not None and mem <= 0.6) if mem else None
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
