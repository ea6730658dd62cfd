"""``python -m endoreview.jobs finetune``: reviewed labels -> training manifest -> ``endofm finetune`` -> a new
registered model version.

    python -m endoreview.jobs finetune --project-id 1                       # every video of the project
    python -m endoreview.jobs finetune --video-id 3 --video-id 4 --parent-version 2 --epochs 5 --activate
    python -m endoreview.jobs finetune --job-id 12                          # parameters from the job row
    python -m endoreview.jobs finetune --resume-of 9                        # continue job 9's stopped run

Steps: (1) snapshot the reviewed labels of the videos into ``<data dir>/runs/job-<id>/manifest.json`` (split by
video: ``--split auto`` hashes video ids into train/val/test; a JSON ``{video_id: split}`` map also works);
(2) run ``python -m core_model finetune`` as a child process from the parent version (``--parent-version``,
``--model DIR``, or the active version), relaying its JSON lines as job progress (epoch, loss, ETA);
(3) register the exported model as a new version whose parent is the starting version, with the data snapshot
(manifest, digest, videos, label counts), the hyper-parameters and the held-out metrics. SIGTERM/SIGINT stop the
child gracefully (its last epoch checkpoint stays in the run folder) and the job ends ``cancelled``.
Progress is the fine-tuning engine's own ``fraction``, passed on as it is. The job's time budget (``budget_min``, the
dialog's) is enforced by the engine (``--time-budget-min``, less the minutes spent on the snapshot): training stops
in time to validate, calibrate and export, and the log and ``model.json`` say so.

``--resume-of N`` (a job row made by :func:`endoreview.services.finetune_plan.create_resume_job` carries it as
``resume_of``) continues job ``N``'s run in its run folder (``<data dir>/runs/job-N/run``) from its last epoch
checkpoint with ``endofm finetune --resume``, on the same data snapshot and options; when no epoch had finished the
run starts again on the same snapshot. The result is registered exactly as a first run's.
Exit codes: 0 succeeded, 1 failed, 2 bad arguments, 3 cancelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from endoreview.jobs.protocol import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, parse_line
from endoreview.jobs.runner import CancelFlag, JobContext, JobKind, JobRun
from endoreview.services.jobs import core_model_command
from endoreview.services.model_resolver import resolve_model
from endoreview.store import Store
from endoreview.store.records import JobState

log = logging.getLogger("endoreview.jobs.finetune")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--video-id", type=int, action="append", dest="video_ids", help="video to train on (repeatable)"
    )
    p.add_argument("--project-id", type=int, help="every video of this project")
    p.add_argument("--split", default="auto", help="auto | train | JSON {video_id: split}")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.0)
    p.add_argument(
        "--parent-version", type=int, help="start from this model version (default: the active one)"
    )
    p.add_argument("--model", help="start from this model directory instead of a registered version")
    p.add_argument("--tasks", help="comma-separated (default: every task the labels support)")
    p.add_argument("--preset", default="default")
    p.add_argument("--epochs", type=int)
    p.add_argument("--mode", choices=["full", "lora", "linear"])
    p.add_argument("--device")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON")
    p.add_argument("--name", help="name of the new model version")
    p.add_argument("--activate", action="store_true", help="make the new version the active one")
    p.add_argument("--library-root", help="this workstation's library folder")
    p.add_argument("--resume-of", type=int, help="continue this stopped fine-tune job's run")


def _video_ids(store: Store, params: dict[str, Any]) -> list[int]:
    ids = [int(v) for v in params.get("video_ids") or []]
    if params.get("project_id") is not None:
        ids += [v.id for v in store.list_videos(int(params["project_id"])) if v.id not in ids]
    return ids


def start_model(store: Store, params: dict[str, Any]) -> tuple[str, int | None]:
    """The model a fine-tune starts from (directory, registered parent id or None for a bare directory)."""
    if params.get("model"):
        return str(Path(params["model"]).resolve()), None
    m = resolve_model(store, model_version=params.get("parent_version"))
    return m.files_dir, m.version_id


def select_tasks(manifest: Any, given: str | None) -> list[str]:
    if given:
        return [t.strip() for t in given.split(",") if t.strip()]
    counts = manifest.label_counts()
    tasks = []
    if counts["video"]:
        tasks.append("classification")
    if counts["mask"]:
        tasks.append("segmentation")
    if counts["box"] or counts["mask"]:
        tasks.append("detection")
    if not tasks:
        raise ValueError("the selected videos have no reviewed labels to train on")
    return tasks


def finetune_command(
    manifest_path: Path,
    run_dir: Path,
    init_dir: str,
    tasks: list[str],
    params: dict,
    started: float | None = None,
) -> list[str]:
    """The ``endofm finetune`` command of a job. ``params["budget_min"]`` (the dialog's time budget) becomes
    ``--time-budget-min``, less what the job spent before training (``started``: when the job began)."""
    cmd = core_model_command(
        "finetune", "--manifest", str(manifest_path), "--out", str(run_dir), "--init", init_dir,
        "--tasks", ",".join(tasks), "--preset", str(params.get("preset") or "default"),
    )  # fmt: skip
    for flag, key in (("--epochs", "epochs"), ("--mode", "mode"), ("--device", "device")):
        if params.get(key) is not None:
            cmd += [flag, str(params[key])]
    for item in params.get("overrides") or []:
        cmd += ["--set", item]
    if params.get("budget_min"):
        spent = (time.time() - started) / 60.0 if started is not None else 0.0
        cmd += ["--time-budget-min", f"{max(float(params['budget_min']) - spent, 0.05):.3f}"]
    return cmd


def run(job: JobRun) -> int:
    store, ctx, params, cancel = job.store, job.ctx, job.params, job.cancel
    assert store is not None and ctx is not None
    started = time.time()
    if params.get("resume_of") is not None:
        return resume(store, ctx, int(params["resume_of"]), params, cancel)
    from endoreview.paths import data_dir
    from endoreview.services.library import LibraryService
    from endoreview.services.manifest import snapshot_manifest

    ids = _video_ids(store, params)
    if not ids:
        ctx.finish(JobState.FAILED, {}, "no videos selected (--video-id or --project-id)")
        return EXIT_USAGE
    init_dir, parent_id = start_model(store, params)
    work = data_dir() / "runs" / f"job-{ctx.id}"
    work.mkdir(parents=True, exist_ok=True)
    split: Any = params.get("split") or "auto"
    if isinstance(split, str) and split.startswith("{"):
        split = {int(k): v for k, v in json.loads(split).items()}
    ctx.progress(0.0, f"snapshot of {len(ids)} video(s)")
    manifest_path = work / "manifest.json"
    manifest = snapshot_manifest(
        store,
        ids,
        split=split,
        library=LibraryService(store, params.get("library_root")),
        out_path=manifest_path,
        val_fraction=float(params.get("val_fraction") or 0.2),
        test_fraction=float(params.get("test_fraction") or 0.0),
    )
    tasks = select_tasks(manifest, params.get("tasks"))
    splits = {s: [v.id for v in manifest.videos if v.split == s] for s in ("train", "val", "test")}
    run_dir = work / "run"
    cmd = finetune_command(manifest_path, run_dir, init_dir, tasks, params, started)
    log.info("finetune job %d: %d videos %s, tasks %s, from %s", ctx.id, len(ids), splits, tasks, init_dir)
    return _train_and_register(
        store, ctx, cmd, cancel, manifest, manifest_path, run_dir,
        video_ids=ids, parent_id=parent_id, params=params,
        notes=f"fine-tuned by job {ctx.id} on {len(ids)} video(s)",
    )  # fmt: skip


def resume(store: Store, ctx: JobContext, old_id: int, params: dict[str, Any], cancel: CancelFlag) -> int:
    """Continue job ``old_id``'s run (see the module docstring)."""
    from core_model.data.manifest import load_manifest
    from endoreview.paths import data_dir

    store.get_job(old_id)  # a resume names a job that exists
    work = data_dir() / "runs" / f"job-{old_id}"
    manifest_path = work / "manifest.json"
    run_dir = work / "run"
    manifest = load_manifest(manifest_path)
    tasks = select_tasks(manifest, params.get("tasks"))
    init_dir, parent_id = start_model(store, params)
    cmd = finetune_command(manifest_path, run_dir, init_dir, tasks, params)
    resumed = (run_dir / "checkpoint.pth").is_file()
    if resumed:
        cmd.append("--resume")
    ctx.progress(0.0, f"resuming job {old_id}" if resumed else f"restarting job {old_id} (no finished epoch)")
    log.info("job %d continues job %d (resume=%s)", ctx.id, old_id, resumed)
    return _train_and_register(
        store, ctx, cmd, cancel, manifest, manifest_path, run_dir,
        video_ids=[int(v) for v in params.get("video_ids") or []], parent_id=parent_id, params=params,
        notes=f"fine-tuned by job {old_id}, resumed by job {ctx.id}", extra_snapshot={"resumed_from_job": old_id},
    )  # fmt: skip


def _train_and_register(
    store: Store,
    ctx: JobContext,
    cmd: list[str],
    cancel: CancelFlag,
    manifest: Any,
    manifest_path: Path,
    run_dir: Path,
    **register: Any,
) -> int:
    done, errors = run_child(cmd, ctx, cancel)
    if cancel():
        ctx.finish(
            JobState.CANCELLED, {"run_dir": str(run_dir)}, "cancelled; the last epoch checkpoint is kept"
        )
        return EXIT_CANCELLED
    if done is None:
        msg = errors[-1] if errors else "the fine-tuning process ended without a result"
        ctx.finish(JobState.FAILED, {"run_dir": str(run_dir)}, msg)
        return EXIT_FAILED
    return register_result(store, ctx, done, manifest, manifest_path, run_dir=run_dir, **register)


def register_result(
    store: Store,
    ctx: JobContext,
    done: dict[str, Any],
    manifest: Any,
    manifest_path: Any,
    *,
    video_ids: list[int],
    parent_id: int | None,
    params: dict[str, Any],
    run_dir: Any,
    notes: str,
    extra_snapshot: dict[str, Any] | None = None,
) -> int:
    """Register a finished fine-tune (its ``done`` event) as a new model version with its data snapshot, and
    finish the job row."""
    from endoreview.services.registry import RegistryService

    snapshot = {
        "manifest": str(manifest_path),
        "manifest_source": manifest.source,
        "video_ids": [int(v) for v in video_ids],
        "splits": {s: [v.id for v in manifest.videos if v.split == s] for s in ("train", "val", "test")},
        "label_counts": manifest.label_counts(),
        **(extra_snapshot or {}),
    }
    mv = RegistryService(store).register(
        done["model_dir"],
        name=params.get("name"),
        parent_id=parent_id,
        data_snapshot=snapshot,
        metrics=done.get("metrics") or {},
        notes=notes,
        activate=bool(params.get("activate")),
    )
    result = {
        "model_version_id": mv.id,
        "name": mv.name,
        "metrics": done.get("metrics"),
        "run_dir": str(run_dir),
    }
    ctx.finish(JobState.SUCCEEDED, result, f"registered {mv.name}")
    return EXIT_OK


def _end_with_parent() -> None:
    """In the fine-tuning child (Linux): SIGTERM it when this job process dies, even by SIGKILL, so training never
    goes on orphaned after the app stopped the job."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_child(cmd: list[str], ctx: JobContext, cancel: CancelFlag) -> tuple[dict | None, list[str]]:
    """Run ``endofm finetune``, relaying its events; returns its ``done`` event (or None) and its errors."""
    env = dict(os.environ)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        bufsize=1,
        preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
    )
    stderr_tail: list[str] = []

    def drain() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            stderr_tail.append(line.rstrip())
            del stderr_tail[:-20]
            log.info("finetune: %s", line.rstrip())

    t = threading.Thread(target=drain, daemon=True)
    t.start()

    def watch() -> None:
        while proc.poll() is None:
            if cancel():
                proc.send_signal(signal.SIGINT)  # graceful: the child keeps its last checkpoint
                return
            threading.Event().wait(0.2)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    done, errors = None, []
    for line in proc.stdout:  # type: ignore[union-attr]
        ev = parse_line(line)
        if ev is None:
            continue
        kind = ev.get("event")
        if kind == "progress":
            msg = f"epoch {ev['epoch'] + 1}/{ev['epochs']} step {ev['step']}/{ev['steps']} loss {ev['loss']:.4f}"
            ctx.progress(
                float(ev.get("fraction", 0.0)),
                msg,
                epoch=ev["epoch"],
                loss=ev["loss"],
                eta_s=ev.get("eta_s"),
            )
        elif kind == "epoch":
            ctx.progress(
                float(ev.get("fraction", (ev["epoch"] + 1) / max(ev["epochs"], 1))),
                f"epoch {ev['epoch'] + 1}/{ev['epochs']} done",
                epoch=ev["epoch"],
                val=ev.get("val"),
                eta_s=ev.get("eta_s"),
            )
        elif kind == "warning":
            ctx.progress(ctx.job.progress or 0.0, ev.get("message", ""), warning=ev.get("message"))
        elif kind == "error":
            errors.append(str(ev.get("message")))
            emit("error", job=ctx.id, message=str(ev.get("message")))
        elif kind == "done":
            done = ev
    proc.wait()
    t.join(timeout=2)
    if proc.returncode != 0 and not errors:
        errors.append(f"fine-tuning exited with {proc.returncode}: {' | '.join(stderr_tail[-3:])}")
    return (done if proc.returncode == 0 else None), errors


KIND = JobKind("finetune", __doc__.split("\n\n")[0], add_arguments, run)
