"""Fine-tuning speed per architecture, measured by real ``endofm finetune`` runs, against the planner's estimate.

For each architecture: a parent model directory (random weights, a classification head) fed at that
architecture's clip shape (``endofm_tiny`` 2 x 112 px as the demo model; ``endofm_base`` 8 x 224 px as the
official checkpoints), a phantom manifest (4 training videos, 1 validation video, 24 frames, 128 px), and one
``core_model.finetune.run.finetune`` epoch of ``--steps`` training clips at batch 1 (the child inherits the
parent's data config). The run's wall time (start-up, training, validation, export) is compared with
``core_model.finetune.speed.estimate_train_seconds`` for the same job. Output: one JSON line per architecture
(``measured_s``, ``estimate_s`` [low, mid, high], ``ratio`` = measured / estimate, ``s_per_clip``), then a
``summary`` naming the machine.

    python benchmarks/finetune_speed.py            # endofm_tiny and endofm_base (minutes on a CPU)
    python benchmarks/finetune_speed.py --small    # endofm_tiny only
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from common import benchmark_parser

from core_model.contract import DataConfig, ModelMeta
from core_model.finetune.config import FinetuneConfig
from core_model.finetune.run import finetune
from core_model.finetune.speed import calibration_clips, estimate_train_seconds
from core_model.heads import EndoFMTaskModel, build_head, save_task_model
from core_model.models import create_model

SHAPES = {"endofm_tiny": (2, 112, 2), "endofm_base": (8, 224, 32)}  # frames, size, frame stride


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def make_manifest(root: Path) -> Path:
    from core_model.phantom.cli import main as phantom

    out = root / "data"
    phantom(
        [
            str(out),
            "--videos",
            "5",
            "--frames",
            "24",
            "--size",
            "128",
            "--seed",
            "11",
            "--val-fraction",
            "0.2",
        ]
    )
    return out / "manifest.json"


def parent(root: Path, arch: str) -> Path:
    t, s, stride = SHAPES[arch]
    bb = create_model(arch, img_size=s, num_frames=t)
    hc = {"classes": ["normal", "abnormal"], "multi_label": False, "dropout": 0.0}
    head = build_head("classification", hc, bb.cfg.embed_dim, bb.cfg.patch_size, bb.cfg.depth)
    data = DataConfig(num_frames=t, img_size=s, frame_stride=stride)
    meta = ModelMeta.for_config(bb.cfg, arch, data, {"classification": hc})
    return save_task_model(root / arch, EndoFMTaskModel(bb, {"classification": head}), meta)


def run(arch: str, manifest: Path, root: Path, steps: int) -> dict:
    model_dir = parent(root, arch)
    cfg = FinetuneConfig(
        manifest=str(manifest),
        out_dir=str(root / f"run-{arch}"),
        init=str(model_dir),
        epochs=1,
        batch_size=1,
        clips_per_video=1,
        max_steps_per_epoch=steps,
        warmup_epochs=0.0,
        test_split="",
    )
    events: list[dict] = []
    stamps: list[tuple[float, int]] = []  # (time, training step) of each progress event

    def emit(ev: dict) -> None:
        events.append(ev)
        if ev.get("event") == "progress":
            stamps.append((time.perf_counter(), int(ev.get("step", 0))))

    t0 = time.perf_counter()
    finetune(cfg, emit)
    measured = time.perf_counter() - t0
    train = [(t, k) for t, k in stamps if k >= 1]
    steps_timed = train[-1][1] - train[0][1] if train else 0
    step_s = (train[-1][0] - train[0][0]) / steps_timed if steps_timed > 0 else None
    start = next(e for e in events if e["event"] == "start")
    n_val = int(start.get("val_clips") or 1)
    meta = ModelMeta.from_dict(json.loads((model_dir / "model.json").read_text()))
    t, s, _ = SHAPES[arch]
    val_frames = [v["num_frames"] for v in json.loads(manifest.read_text())["videos"] if v["split"] == "val"]
    n_cal = calibration_clips(val_frames, t, SHAPES[arch][2])  # fine-tuning ends by calibrating on them
    est = estimate_train_seconds(meta.arch, t, s, steps, n_val, 1, "cpu", calibration_clips=n_cal)
    return {
        "row": arch,
        "clip": [t, s],
        "steps": steps,
        "val_clips": n_val,
        "calibration_clips": n_cal,
        "measured_s": round(measured, 1),
        "s_per_clip": round((measured - 20.0) / (steps + n_val / 3.0), 3),
        "train_step_s": round(step_s, 3) if step_s is not None else None,  # between progress events (batch 1)
        "overhead_s": round(measured - steps * step_s, 1) if step_s is not None else None,
        "estimate_s": [round(v, 1) for v in est],
        "ratio": round(measured / est[1], 2),
    }


def main() -> None:
    ap = benchmark_parser(__doc__, "endofm_tiny only")
    ap.add_argument("--steps", type=int, default=4, help="training clips per run (default 4)")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_manifest(root)
        for arch in ["endofm_tiny"] + ([] if args.small else ["endofm_base"]):
            row = run(arch, manifest, root, args.steps if arch != "endofm_tiny" else 4 * args.steps)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(
        json.dumps(
            {
                "summary": "finetune_speed",
                "machine": machine(),
                "ratios": {r["row"]: r["ratio"] for r in rows},
                "s_per_clip": {r["row"]: r["s_per_clip"] for r in rows},
                "within_2x": all(0.5 <= r["ratio"] <= 2.0 for r in rows),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
