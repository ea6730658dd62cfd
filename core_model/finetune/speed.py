"""How long fine-tuning takes, from measured speed (torch-free: the app's planner imports it).

``MEASURED[device][arch]``: seconds per training clip (forward, loss, backward, AdamW step at batch 1-2, plus the
run's data loading) measured by ``benchmarks/finetune_speed.py`` at the stated clip shape on the stated machine.
:func:`train_seconds_per_clip` scales the entry of the same architecture (else the nearest width) to another clip
shape by the transformer's cost, ``depth * T*N * (12 D^2 + 2 D (N + T))`` (N patches per frame, T frames: the MLP
and projections plus the divided space and time attention), and returns a range: the measured spread and the load
of a shared machine make a single number misleading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MEASURED", "RANGE", "estimate_train_seconds", "train_seconds_per_clip"]

# seconds per training clip; "clip": (frames, pixels); measured on this project's 2-core CPU box (shared, loaded)
# with benchmarks/finetune_speed.py; see docs/experiments/planner_speed.md
MEASURED: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "endofm_tiny": {"s_per_clip": 0.55, "clip": (2, 112), "embed_dim": 192, "depth": 6, "patch": 16},
        "endofm_base": {"s_per_clip": 40.0, "clip": (8, 224), "embed_dim": 768, "depth": 12, "patch": 16},
    },
    "cuda": {  # not measured here (no GPU on the measuring machine): scaled from published V100-class figures
        "endofm_tiny": {"s_per_clip": 0.01, "clip": (2, 112), "embed_dim": 192, "depth": 6, "patch": 16},
        "endofm_base": {"s_per_clip": 0.25, "clip": (8, 224), "embed_dim": 768, "depth": 12, "patch": 16},
    },
}
RANGE = (0.6, 1.6)  # low, high factors around the estimate (the spread of repeated measurements)


def _cost(depth: int, dim: int, frames: int, size: int, patch: int) -> float:
    n = (size // patch) ** 2
    tokens = frames * n
    return depth * tokens * (12.0 * dim * dim + 2.0 * dim * (n + frames))


def train_seconds_per_clip(
    arch: Mapping[str, Any], num_frames: int, img_size: int, device: str = "cpu"
) -> tuple[float, float, float]:
    """``(low, estimate, high)`` seconds per training clip of a backbone (``arch``: an ``EndoFMConfig`` dict, or
    ``{"name": ..., "config": {...}}``) fed ``num_frames`` x ``img_size`` clips on ``device`` (cpu | cuda)."""
    cfg = dict(arch.get("config", arch))
    name = str(arch.get("name", ""))
    dim, depth, patch = (
        int(cfg.get("embed_dim", 768)),
        int(cfg.get("depth", 12)),
        int(cfg.get("patch_size", 16)),
    )
    table = MEASURED["cuda" if str(device).startswith("cuda") else "cpu"]
    ref = table.get(name.split("-")[0]) or min(
        table.values(), key=lambda r: (abs(r["embed_dim"] - dim), abs(r["depth"] - depth))
    )
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
    clips at a third of it (forward only), plus 20 s of start-up and export."""
    lo, mid, hi = train_seconds_per_clip(arch, num_frames, img_size, device)
    per_epoch = clips_per_epoch + val_clips / 3.0
    return tuple(20.0 + epochs * per_epoch * s for s in (lo, mid, hi))  # type: ignore[return-value]
