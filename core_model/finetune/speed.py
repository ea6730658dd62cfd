"""How long fine-tuning takes, from measured speed (torch-free: the app's planner imports it).

``MEASURED[device][arch]``: seconds per training clip at batch 1 (forward, loss, backward, AdamW step) at the stated
clip shape, and the fixed cost of one run (loading the parent, planning the machine, validation start-up, export),
measured by ``benchmarks/finetune_speed.py`` on the stated machine. :func:`train_seconds_per_clip` scales the entry
of the same architecture (else the nearest width) to another clip shape by the transformer's cost,
``depth * T*N * (12 D^2 + 2 D (N + T))`` (N patches per frame, T frames: the MLP and projections plus the divided
space and time attention), and returns a range: a shared machine's load moves the speed by a factor of ~2.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MEASURED",
    "RANGE",
    "calibration_clips",
    "estimate_train_seconds",
    "run_overhead_s",
    "train_seconds_per_clip",
    "validation_clips",
]

# measured with benchmarks/finetune_speed.py on this project's 2-core CPU box while other work shared it (load ~12);
# see docs/experiments/planner_speed.md
MEASURED: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        # a training step at batch 1: 170.8 s (load ~12) and 124.5 s (load ~7, a real `endofm finetune`): 145 s;
        # fixed cost: 240 s (start-up 22 s; after training: the 1 GB run checkpoint, export, the model's load for
        # calibration and exit; 698.7 s for 3 steps + 1 validation clip + 1 calibration clip)
        "endofm_base": {
            "s_per_clip": 145.0, "overhead_s": 240.0, "clip": (8, 224), "embed_dim": 768, "depth": 12, "patch": 16,
        },
        # the base figure scaled by cost (1/513); the demo model's own training on the same box, unloaded, ran
        # 0.10 s a clip at batch 8
        "endofm_tiny": {
            "s_per_clip": 0.28, "overhead_s": 20.0, "clip": (2, 112), "embed_dim": 192, "depth": 6, "patch": 16,
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


def validation_clips(
    frames_per_video: Sequence[int],
    num_frames: int,
    frame_stride: int,
    per_frame: bool,
    span_sampling: bool = False,
    eval_clip_stride: int = 0,
) -> int:
    """Clips of one validation pass over held-out videos of these lengths: the count of
    ``core_model.finetune.data.eval_clips`` (per-frame tasks: every frame sampled once, about ``frames /
    num_frames`` clips a video; classification only: non-overlapping clips, or the first window in span mode)."""
    n = 0
    t = max(1, int(num_frames))
    s = max(1, int(frame_stride)) if not span_sampling else 1
    for length in frames_per_video:
        length = int(length)
        if length <= 0:
            continue
        if not per_frame and span_sampling:
            n += 1
        elif per_frame:
            n += sum(min(s, length - b) for b in range(0, length, s * t))
        else:
            n += len(range(0, length, eval_clip_stride or s * t))
    return n


def calibration_clips(
    frames_per_video: Sequence[int], num_frames: int, frame_stride: int, clip_stride: int | None = None
) -> int:
    """Clips the serving path runs over held-out videos of these lengths when fine-tuning ends by calibrating the
    operating point (``core_model.inference.calibrate``: one predictor pass per video, sliding clips
    ``clip_stride`` apart, default half a clip's span, plus one aligned to the end)."""
    span = int(frame_stride) * (int(num_frames) - 1) + 1
    c = int(clip_stride) if clip_stride else max(1, (int(num_frames) * int(frame_stride)) // 2)
    return sum(1 + -(-max(int(n) - span, 0) // c) for n in frames_per_video if int(n) > 0)


def estimate_train_seconds(
    arch: Mapping[str, Any],
    num_frames: int,
    img_size: int,
    clips_per_epoch: int,
    val_clips: int,
    epochs: int,
    device: str = "cpu",
    calibration_clips: int = 0,
) -> tuple[float, float, float]:
    """``(low, estimate, high)`` seconds for ``epochs`` epochs: training clips at the training cost, validation
    clips (every epoch) and the final calibration's clips at a third of it (forward only), plus the
    architecture's fixed run overhead."""
    lo, mid, hi = train_seconds_per_clip(arch, num_frames, img_size, device)
    clips = epochs * (clips_per_epoch + val_clips / 3.0) + calibration_clips / 3.0
    over = run_overhead_s(arch, device)
    return tuple(over + clips * s for s in (lo, mid, hi))  # type: ignore[return-value]
