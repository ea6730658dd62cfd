"""``endofm pretrain --config CONFIG.yaml [--out DIR] [--init PATH | --from-scratch] [--resume] [--set key=value ...]``.

A run continues from a checkpoint, as the official recipe does: by default the bundled backbone
(``resources/demo_model``); ``--init`` names another (a user's ``endo_fm.pth``, an official ``checkpoint.pth``, whose
student, teacher, centre and optimiser all carry over, or a model directory). ``--from-scratch`` starts from random
weights. ``--resume`` continues this run directory's own ``checkpoint.pth`` instead.

Prints one JSON object per line on stdout (``{"event": "progress", "epoch", "step", "loss", "lr", ...}``, then
``epoch``, ``done`` or ``error`` events); when stdout is a terminal it shows a human progress bar instead
(``--json`` forces JSON lines). The run directory (``--out``, default ``runs/pretrain``) receives ``config.yaml``
(the resolved config), ``metrics.jsonl``, ``checkpoint.pth`` every epoch and ``export/`` at the end.
Under ``torchrun`` only rank 0 prints and writes.

Exit codes: 0 done (or stopped by ``--stop-after-epochs``), 1 non-finite loss, 2 bad input (config, data list,
checkpoint), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["main"]


class _ProgressBar:
    """One rewritten line on a terminal: epoch, step bar, loss, lr, speed."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "progress":
            done, total = event["step"], max(event["steps"], 1)
            width = 30
            fill = int(width * done / total)
            bar = "#" * fill + "-" * (width - fill)
            self.stream.write(
                f"\repoch {event['epoch']:>3} [{bar}] {done}/{total} loss {event['loss']:.4f} "
                f"lr {event['lr']:.2e} {event['clips_per_s']:.2f} clips/s"
            )
            self.stream.flush()
        elif kind == "epoch":
            self.stream.write(
                f"\nepoch {event['epoch']} done: loss {event['loss']:.4f} ({event['seconds']:.0f} s)\n"
            )
        elif kind == "start":
            self.stream.write(
                f"pretraining {event['clips']} clips, {event['steps_per_epoch']} steps/epoch, epochs "
                f"{event['start_epoch']}..{event['epochs'] - 1} on {event['device']} ({event['precision']}), "
                f"starting from {event.get('init', '?')}\n"
            )
        elif kind in ("done", "stopped"):
            self.stream.write(f"{kind}: {json.dumps({k: v for k, v in event.items() if k != 'event'})}\n")
        self.stream.flush()


def _silent(event: dict[str, Any]) -> None:
    return None


def _json_emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="endofm pretrain",
        description="Self-supervised pretraining with the Endo-FM recipe (DINO-style video self-distillation). "
        "Like the official run, it continues from a checkpoint: by default the bundled backbone "
        "(resources/demo_model); --init names another, --from-scratch starts from random weights. "
        "JSON lines on stdout; run directory with config.yaml, metrics.jsonl, checkpoints and export/.",
    )
    p.add_argument(
        "--config",
        help="YAML config file, or a built-in one by name: demo_tiny, endofm_official (default: the official recipe)",
    )
    p.add_argument("--out", default=None, help="run directory (default runs/pretrain)")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="the weights to continue from: 'bundled' (default: resources/demo_model, which also decides the "
        "architecture), endo_fm.pth, an official checkpoint.pth (student, teacher, centre and optimiser carry over) "
        "or a model directory (sets model.init_checkpoint)",
    )
    start.add_argument(
        "--from-scratch",
        action="store_true",
        help="start from randomly initialised weights instead of a checkpoint",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue this run from OUT/checkpoint.pth (ignores --init)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)",
    )
    p.add_argument(
        "--stop-after-epochs",
        type=int,
        default=None,
        help="end this invocation after N epochs (resume later with --resume)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines even when stdout is a terminal")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pathlib import Path

    from core_model.checkpoint import CheckpointError
    from core_model.pretrain.config import ConfigError, load_config
    from core_model.pretrain.data import ClipListError
    from core_model.pretrain.state import ResumeError
    from core_model.pretrain.train import NonFiniteLossError, train

    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints events
    emit = _ProgressBar(sys.stderr) if sys.stdout.isatty() and not args.json else _json_emit
    if not rank0:
        emit = _silent
    out = Path(args.out) if args.out else Path("runs/pretrain")
    config_path = args.config
    if config_path is None and args.resume and (out / "config.yaml").is_file():
        config_path = str(out / "config.yaml")  # resume with the run's own resolved config
    t0 = time.perf_counter()
    try:
        overrides = list(args.overrides)
        if args.init:
            overrides.append(f"model.init_checkpoint={args.init}")
        elif args.from_scratch:
            overrides.append("model.init_checkpoint=scratch")
        cfg = load_config(config_path, overrides)
        result = train(cfg, out, resume=args.resume, emit=emit, stop_after_epochs=args.stop_after_epochs)
    except NonFiniteLossError as exc:
        if emit is _json_emit:
            emit({"event": "error", "message": str(exc)})
        print(f"endofm pretrain: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, ClipListError, ResumeError, CheckpointError, ValueError) as exc:
        if emit is _json_emit:
            emit({"event": "error", "message": str(exc)})
        print(f"endofm pretrain: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("endofm pretrain: interrupted; resume with --resume", file=sys.stderr)
        return 130
    logging.getLogger(__name__).info(
        "finished %d epochs in %.0f s; last loss %.4f; run dir %s",
        result.epochs_done,
        time.perf_counter() - t0,
        result.last_loss,
        result.out_dir,
    )
    return 0
