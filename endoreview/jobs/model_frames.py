"""``python -m endoreview.jobs model-frames --model A --model B --video PATH --frame 12 [--frame 40 …]``: what each
model predicts on the same frames (for the side-by-side comparison in the app). Keeps no job row.

Prints JSON lines: ``{"event": "frame", "model": k, "frame": i, "probs": {...}, "masks": [...], "boxes": [...]}``
for every model ``k`` (0-based, in the order given) and frame, then ``{"event": "done"}``; a model that cannot
run gives ``{"event": "error", "model": k, "message": ...}``. Exit 0, or 1 when any model failed.
"""

from __future__ import annotations

import argparse

from endoreview.jobs.protocol import EXIT_FAILED, EXIT_OK, emit
from endoreview.jobs.runner import JobKind, JobRun


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, help="model directory (repeat for each model)")
    p.add_argument("--video", required=True)
    p.add_argument("--frame", type=int, action="append", required=True)
    p.add_argument("--device", default="cpu")


def run(job: JobRun) -> int:
    from core_model.inference import Predictor

    params = job.params
    factory = job.deps.get("predictor_factory") or Predictor
    failed = False
    for k, model_dir in enumerate(params["model"]):
        try:
            predictor = factory(model_dir, device=params["device"])
            for ev in predictor.predict_video(params["video"], frames=params["frame"]):
                if ev.get("event") == "frame":
                    emit(
                        "frame",
                        model=k,
                        frame=int(ev["frame"]),
                        probs=ev.get("probs") or {},
                        masks=ev.get("masks") or [],
                        boxes=ev.get("boxes") or [],
                    )
        except Exception as exc:  # reported per model, the other still runs
            failed = True
            emit("error", model=k, message=f"{type(exc).__name__}: {exc}")
    emit("done")
    return EXIT_FAILED if failed else EXIT_OK


KIND = JobKind("model-frames", __doc__.split("\n\n")[0], add_arguments, run, row=False, store=False)
