"""``python -m endoreview.jobs predict``: run a model over library videos and record the predictions.

    python -m endoreview.jobs predict --video-id 3 --video-id 4 --model-version 2      # registered model
    python -m endoreview.jobs predict --all-unpredicted --model path/to/model_dir     # model dir (looked up
                                                                                     # or registered by path)
    python -m endoreview.jobs predict --job-id 12                                     # parameters from the job row

Results stream into the store as they come (:class:`endoreview.services.predictions.PredictionRecorder`, one
transaction per ``--batch-frames`` frames), with job state and progress in the jobs table and on stdout (JSON
lines, :mod:`endoreview.jobs.protocol`). SIGTERM/SIGINT cancel gracefully: the current batch is committed, the
run is closed as ``cancelled``, the job ends ``cancelled`` (exit 3). A video that cannot be read is reported and
skipped. Logs and events name videos by id only.

The predictor is ``core_model.inference.Predictor``; a caller of :func:`endoreview.jobs.runner.run_job` may inject
another factory as ``predictor_factory`` (tests do, through their own entry module), called as
``factory(model_dir, device=..., batch_size=...)``; neither the command line nor a job row can choose it.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from endoreview.jobs.protocol import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, emit
from endoreview.jobs.runner import SCRUBBER, JobKind, JobRun
from endoreview.services.library import LibraryService, VideoImportError
from endoreview.services.model_resolver import resolve_model
from endoreview.services.predictions import PredictionRecorder
from endoreview.store import Store, StoreError
from endoreview.store.records import JobState, RunState

log = logging.getLogger("endoreview.jobs.predict")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--video-id", type=int, action="append", dest="video_ids", help="video to run (repeatable)"
    )
    p.add_argument(
        "--all-unpredicted", action="store_true", help="every library video without a finished run"
    )
    p.add_argument("--project-id", type=int, help="with --all-unpredicted: only this project")
    p.add_argument("--model", help="model directory")
    p.add_argument("--model-version", type=int, help="registered model version id (default: the active one)")
    p.add_argument("--library-root", help="this workstation's library folder")
    p.add_argument("--batch-frames", type=int, default=256, help="frames per transaction (default 256)")
    p.add_argument("--batch-size", type=int, default=4, help="clips per forward pass")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: CUDA if present)")


def _default_factory() -> Any:
    import os

    os.environ.setdefault(
        "OMP_WAIT_POLICY", "PASSIVE"
    )  # before torch loads OpenMP (core_model.inference.cli)
    from core_model.inference import Predictor

    return Predictor


def _video_ids(store: Store, params: dict[str, Any]) -> list[int]:
    ids = [int(v) for v in params.get("video_ids") or []]
    if params.get("all_unpredicted"):
        for v in store.list_videos(params.get("project_id")):
            if v.id not in ids and not any(
                r.state == RunState.FINISHED for r in store.list_prediction_runs(v.id)
            ):
                ids.append(v.id)
    return ids


def run(job: JobRun) -> int:
    store, ctx, params, cancel = job.store, job.ctx, job.params, job.cancel
    assert store is not None and ctx is not None
    model = resolve_model(
        store,
        model_version=params.get("model_version"),
        model=params.get("model"),
        register=True,
    )
    model_dir, mv_id = model.files_dir, model.version_id
    ids = _video_ids(store, params)
    library = LibraryService(store, params.get("library_root"))
    log.info("predict job %d: %d video(s), model version %s", ctx.id, len(ids), mv_id)
    factory = job.deps.get("predictor_factory") or _default_factory()
    kwargs: dict[str, Any] = {"batch_size": int(params.get("batch_size") or 4)}
    if params.get("device"):
        kwargs["device"] = params["device"]
    predictor = factory(model_dir, **kwargs)
    done_runs, failures = [], []
    total = len(ids)
    for i, vid in enumerate(ids):
        if cancel():
            break
        try:
            video = store.get_video(vid)
            path = library.resolve_path(video)
            SCRUBBER.register(vid, path)
        except (StoreError, VideoImportError) as e:
            failures.append({"video_id": vid, "message": str(e)})
            emit("error", job=ctx.id, video_id=vid, message=str(e))
            continue
        recorder = PredictionRecorder(
            store, vid, mv_id, params={"job_id": ctx.id}, batch_frames=int(params.get("batch_frames") or 256)
        )
        last = [0.0]

        def on_event(ev: dict[str, Any], _i: int = i, _vid: int = vid, last: list[float] = last) -> None:
            if ev.get("event") == "progress" and time.monotonic() - last[0] > 0.5:
                last[0] = time.monotonic()
                frac = (_i + float(ev.get("fraction", 0.0))) / max(total, 1)
                ctx.progress(frac, f"video {_vid}: frame {ev.get('done')}/{ev.get('total')}", video_id=_vid)

        events = predictor.predict_video(path, should_cancel=cancel)
        res = recorder.record(events, on_event)
        if res.state == RunState.FAILED:
            msg = _scrub(res.message, path)
            failures.append({"video_id": vid, "message": msg})
            emit("error", job=ctx.id, video_id=vid, message=msg)
        elif res.state == RunState.FINISHED:
            done_runs.append(res.run.id)
            emit(
                "video_done",
                job=ctx.id,
                video_id=vid,
                run_id=res.run.id,
                frames=res.frames,
                labels=res.labels,
            )
            ctx.progress((i + 1) / max(total, 1), f"video {vid} done", video_id=vid)
    result = {"runs": done_runs, "failed": failures, "videos": ids}
    if cancel():
        ctx.finish(JobState.CANCELLED, result, "cancelled")
        return EXIT_CANCELLED
    if failures and not done_runs:
        ctx.finish(JobState.FAILED, result, f"{len(failures)} video(s) failed")
        return EXIT_FAILED
    ctx.finish(JobState.SUCCEEDED, result, f"{len(done_runs)} video(s) done, {len(failures)} failed")
    return EXIT_OK


def _scrub(message: str, path: Path) -> str:
    """Error messages from decoders name the file; logs and events must not (patient identifiers)."""
    return SCRUBBER.scrub(message.replace(str(path), "<video file>").replace(path.name, "<video file>"))


KIND = JobKind("predict", __doc__.split("\n\n")[0], add_arguments, run)
