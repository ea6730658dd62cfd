"""``python -m endoreview.services.model_frames --model A --model B --video PATH --frame 12 [--frame 40 …]``:
what each model predicts on the same frames (for the side-by-side comparison in the app).

Prints JSON lines: ``{"event": "frame", "model": k, "frame": i, "probs": {...}, "masks": [...], "boxes": [...]}``
for every model ``k`` (0-based, in the order given) and frame, then ``{"event": "done"}``; a model that cannot
run gives ``{"event": "error", "model": k, "message": ...}``. Exit 0, or 1 when any model failed.
"""

from __future__ import annotations

import argparse
import sys

from endoreview.jobs.protocol import emit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endoreview.services.model_frames")
    p.add_argument("--model", action="append", required=True, help="model directory (repeat for each model)")
    p.add_argument("--video", required=True)
    p.add_argument("--frame", type=int, action="append", required=True)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from core_model.inference import Predictor

    failed = False
    for k, model_dir in enumerate(args.model):
        try:
            for ev in Predictor(model_dir, device=args.device).predict_video(args.video, frames=args.frame):
                if ev.get("event") == "frame":
                    emit(
                        "frame",
                        model=k,
                        frame=int(ev["frame"]),
                        probs=ev.get("probs") or {},
                        masks=ev.get("masks") or [],
                        boxes=ev.get("boxes") or [],
                    )
        except Exception as exc:  # noqa: BLE001 - reported per model, the other still runs
            failed = True
            emit("error", model=k, message=f"{type(exc).__name__}: {exc}")
    emit("done")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
