"""``endofm finetune --manifest M --out DIR [--tasks classification,segmentation,detection] [--init MODEL] ...``

Fine-tunes task heads (and the backbone, or LoRA adapters) on a training manifest. Prints one JSON object per line
on stdout (``start``, ``progress``, ``epoch``, ``warning``, ``early_stop``, ``done``, or ``error``; see
``core_model.finetune.run``). Exit codes: 0 done, 1 training failed (e.g. non-finite loss), 2 bad input
(manifest, model, options), 130 interrupted (the last epoch's checkpoint stays; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from core_model.finetune.presets import PRESETS

__all__ = ["build_config", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endofm finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True, help="training manifest JSON (endoreview.training-manifest)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, exported model/, result.json)")
    p.add_argument("--tasks", default=None, help="comma-separated: classification, segmentation, detection")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="recipe (see presets)")
    p.add_argument("--init", default=None, help="model directory or checkpoint to start from")
    p.add_argument("--arch", default=None, help="backbone when --init is empty or a bare checkpoint")
    p.add_argument("--mode", choices=["full", "lora", "linear"], default=None, help="what is trained")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="0 = fit to the device's memory")
    p.add_argument("--lr", type=float)
    p.add_argument("--num-frames", type=int)
    p.add_argument("--img-size", type=int)
    p.add_argument("--frame-stride", type=int)
    p.add_argument("--clips-per-video", type=int)
    p.add_argument("--patience", type=int, help="early stopping after N epochs without improvement (0: off)")
    p.add_argument("--monitor", help="validation metric to select/stop on, e.g. segmentation/dice_seq")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: best available)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--grad-checkpointing", choices=["auto", "on", "off"])
    p.add_argument("--memory-budget-gb", type=float, help="plan as if the GPU had this much memory")
    p.add_argument("--max-steps-per-epoch", type=int)
    p.add_argument(
        "--time-budget-min",
        type=float,
        help="stop training in time to validate, calibrate and export within this many minutes of wall time",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help='any FinetuneConfig field, value as JSON, e.g. --set head_config=\'{"detection":{"fpn_channels":64}}\'',
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pth")
    p.add_argument(
        "--stop-after-epochs", type=int, default=0, help="end after N epochs (continue with --resume)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return p


_FLAGS = {
    "arch": "arch",
    "mode": "mode",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "num_frames": "num_frames",
    "img_size": "img_size",
    "frame_stride": "frame_stride",
    "clips_per_video": "clips_per_video",
    "patience": "patience",
    "monitor": "monitor",
    "seed": "seed",
    "device": "device",
    "amp": "amp",
    "grad_checkpointing": "grad_checkpointing",
    "memory_budget_gb": "memory_budget_gb",
    "max_steps_per_epoch": "max_steps_per_epoch",
}


def build_config(args: argparse.Namespace):
    """Preset, then explicit flags, then ``--set`` overrides."""
    from core_model.finetune.config import FinetuneConfig
    from core_model.finetune.presets import get_preset

    tasks = (
        tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else ("classification",)
    )
    from core_model.finetune.modeling import DATA_FIELDS

    values: dict[str, Any] = {"manifest": args.manifest, "out_dir": args.out, "tasks": tasks}
    preset = get_preset(args.preset, tasks)
    values.update(preset)
    # what sets the data config explicitly (everything else is inherited from --init's model.json)
    explicit: dict[str, str] = {}
    for k in DATA_FIELDS:
        if k in preset or (k == "eval_crop" and "augment" in preset):
            explicit[k] = f"preset {args.preset}"
    if args.tasks and args.preset != "default" and tuple(values["tasks"]) != tasks:
        raise ValueError(f"preset {args.preset} is for {list(values['tasks'])}, not {list(tasks)}")
    if args.init:
        values["init"] = args.init
    for attr, key in _FLAGS.items():
        v = getattr(args, attr)
        if v is not None:
            values[key] = v
            if key in DATA_FIELDS:
                explicit[key] = "--" + attr.replace("_", "-")
    if args.arch is not None:
        values["arch_explicit"] = True
    if args.time_budget_min is not None:
        if args.time_budget_min <= 0:
            raise ValueError(f"--time-budget-min must be positive, got {args.time_budget_min}")
        values["time_budget_s"] = float(args.time_budget_min) * 60.0
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
        if key.strip() in DATA_FIELDS:
            explicit[key.strip()] = f"--set {key.strip()}"
        if key.strip() == "augment":
            explicit["eval_crop"] = "--set augment"
    explicit.update(values.get("data_overrides") or {})
    values["data_overrides"] = explicit
    return FinetuneConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def emit(event: dict) -> None:
        print(json.dumps(event, default=str), flush=True)

    try:
        cfg = build_config(args)
    except (ValueError, TypeError) as exc:
        emit({"event": "error", "message": f"bad options: {exc}"})
        return 2
    from core_model.finetune.run import finetune

    try:
        finetune(cfg, emit, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    except KeyboardInterrupt:
        emit({"event": "error", "message": "interrupted; continue with --resume"})
        return 130
    except FloatingPointError as exc:
        emit({"event": "error", "message": str(exc)})
        return 1
    except (ValueError, FileNotFoundError, OSError) as exc:
        emit({"event": "error", "message": str(exc)})
        return 2
    except Exception as exc:  # report every failure as an event, with its type
        logging.getLogger(__name__).debug("fine-tuning failed", exc_info=True)
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0
