"""How long fine-tuning takes, from measured speed (torch-free: the app's planner imports it).

``MEASURED[device][arch]``: seconds per training clip at batch 1 (forward, loss, backward, AdamW step) at the stated
clip shape, and the fixed cost of one run (loading the parent, planning the machine, validation start-up, export),
measured by ``benchmarks/finetune_speed.py`` on the stated machine. :func:`train_seconds_per_clip` scales the entry
of the same architecture (else the nearest width) to another clip shape by the transformer's cost,
``depth * T*N * (12 D^2 + 2 D (N + T))`` (N patches per frame, T frames: the MLP and projections plus the divided
space and time attention), and returns a range: a shared machine's load moves the speed by a factor of ~2.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MEASURED", "RANGE", "estimate_train_seconds", "run_overhead_s", "train_seconds_per_clip"]

# measured with benchmarks/finetune_speed.py on this project's 2-core CPU box while other work shared it (load ~12);
# see docs/experiments/planner_speed.md
MEASURED: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        # 170.8 s per step between progress events (steps 1-3); 712 s for 3 steps + 1 validation clip + export
        "endofm_base": {
            "s_per_clip": 170.0, "overhead_s": 120.0, "clip": (8, 224), "embed_dim": 768, "depth": 12, "patch": 16,
        },
        # the base figure scaled by cost (1/513); the demo model's own training on the same box, unloaded, ran
        # 0.10 s a clip at batch 8
        "endofm_tiny": {
            "s_per_clip": 0.33, "overhead_s": 20.0, "clip": (2, 112), "embed_dim": 192, "depth": 6, "patch": 16,
        },
    },
    "cuda": {  # not measured (no GPU on the measuring machine): an assumption, two orders of magnitude above CPU
        "endofm_base": {
            "s_per_clip": 1.0, "overhead_s": 30.0, "clip": (8, 224), "embed_dim": 768, "depth": 12, "patch": 16,
        },
        "endofm_tiny": {
            "s_per_clip": 0.01, "overhead_s": 10.0, "clip": (2, 112), "embed_dim": 192, "depth": 6, "patch": 16,
        },
    },
}  # fmt: skip
RANGE = (0.4, 1.5)  # low, high factors: an idle machine runs ~2.5x faster than the loaded one measured


def _cost(depth: int, dim: int, frames: int, size: int, patch: int) -> float:
    n = (size // patch) ** 2
    tokens = frames * n
    return depth * tokens * (12.0 * dim * dim + 2.0 * dim * (n + frames))


def _reference(arch: Mapping[str, Any], device: str) -> dict[str, Any]:
    cfg = dict(arch.get("config", arch))
    name = str(arch.get("name", ""))
    dim, depth = int(cfg.get("embed_dim", 768)), int(cfg.get("depth", 12))
    table = MEASURED["cuda" if str(device).startswith("cuda") else "cpu"]
    return table.get(name.split("-")[0]) or min(
        table.values(), key=lambda r: (abs(r["embed_dim"] - dim), abs(r["depth"] - depth))
    )


def run_overhead_s(arch: Mapping[str, Any], device: str = "cpu") -> float:
    """Fixed seconds of one fine-tuning run of this architecture (start-up, machine plan, export)."""
    return float(_reference(arch, device)["overhead_s"])


def train_seconds_per_clip(
    arch: Mapping[str, Any], num_frames: int, img_size: int, device: str = "cpu"
) -> tuple[float, float, float]:
    """``(low, estimate, high)`` seconds per training clip of a backbone (``arch``: an ``EndoFMConfig`` dict, or
    ``{"name": ..., "config": {...}}``) fed ``num_frames`` x ``img_size`` clips on ``device`` (cpu | cuda)."""
    cfg = dict(arch.get("config", arch))
    dim, depth, patch = (
        int(cfg.get("embed_dim", 768)),
        int(cfg.get("depth", 12)),
        int(cfg.get("patch_size", 16)),
    )
    ref = _reference(arch, device)
    t_ref, s_ref = ref["clip"]
    mid = (
        ref["s_per_clip"]
        * _cost(depth, dim, num_frames, img_size, patch)
        / _cost(ref["depth"], ref["embed_dim"], t_ref, s_ref, ref["patch"])
    )
    return mid * RANGE[0], mid, mid * RANGE[1]


def estimate_train_seconds(
    arch: Mapping[str, Any],
    num_frames: int,
    img_size: int,
    clips_per_epoch: int,
    val_clips: int,
    epochs: int,
    device: str = "cpu",
) -> tuple[float, float, float]:
    """``(low, estimate, high)`` seconds for ``epochs`` epochs: training clips at the training cost, validation
    clips at a third of it (forward only), plus the architecture's fixed run overhead."""
    lo, mid, hi = train_seconds_per_clip(arch, num_frames, img_size, device)
    per_epoch = clips_per_epoch + val_clips / 3.0
    over = run_overhead_s(arch, device)
    return tuple(over + epochs * per_epoch * s for s in (lo, mid, hi))  # type: ignore[return-value]
