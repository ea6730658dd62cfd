"""``endofm evaluate --model DIR --manifest M [--split test] [--tasks ...] [--out result.json]``

Scores a model directory on one split of a training manifest through the serving path (``endofm predict``'s
sampling, resize/crop and whole-video decision; ``core_model.finetune.evaluation``) with the paper's metrics
(classification F1 of the whole-video call, Dice per sequence and per frame, frame-level detection F1 at 0.5 and
AP50, per-lesion sensitivity and delay) and the screening sensitivity/specificity at the model's operating point.
Prints JSON lines (``progress`` events, then ``{"event": "done", "metrics": {...}}`` or ``error``); ``--out``
also writes the metrics and the per-frame outcomes (what the registry compares between two versions).
Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endofm evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--manifest", required=True, help="training manifest JSON")
    p.add_argument("--split", default="test", help="train | val | test | unassigned | all (default test)")
    p.add_argument("--tasks", default=None, help="comma-separated subset of the model's heads")
    p.add_argument("--device", default=None)
    p.add_argument(
        "--batch-size", type=int, default=None, help="clips per forward pass (default: as predict)"
    )
    p.add_argument(
        "--score-threshold", type=float, default=0.5, help="detection score threshold (paper: 0.5)"
    )
    p.add_argument("--out", default=None, help="write metrics + per-frame outcomes here (JSON)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)

    def emit(event: dict) -> None:
        print(json.dumps(event, default=str), flush=True)

    from core_model.finetune.evaluation import evaluate_model_dir

    tasks = tuple(t.strip() for t in args.tasks.split(",")) if args.tasks else None
    last = [0.0]

    def on_step(i: int, n: int) -> None:
        now = time.time()
        if now - last[0] >= 0.5 or i + 1 == n:
            last[0] = now
            emit({"event": "progress", "step": i + 1, "steps": n, "fraction": round((i + 1) / max(n, 1), 4)})

    try:
        res = evaluate_model_dir(
            args.model,
            args.manifest,
            args.split,
            tasks,
            args.device,
            args.batch_size,
            args.score_threshold,
            on_step,
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        emit({"event": "error", "message": str(exc)})
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(res.to_json(), default=str))
    emit({"event": "done", "metrics": res.metrics, "out": args.out})
    return 0
