"""``python -m endoreview.services.finetune_resume --job-id N``: continue a fine-tune that stopped.

Job ``N`` is a queued ``finetune`` job made by :func:`endoreview.services.finetune_plan.create_resume_job`; its
``resume_of`` parameter names the job that failed, was cancelled or was killed. The run continues in that job's
run folder (``<data dir>/runs/job-<old>/run``) from its last epoch checkpoint with ``endofm finetune --resume``, on
the same data snapshot (``manifest.json``) and options; when no epoch had finished the run starts again on the
same snapshot. The result is registered as a new model version exactly like the ordinary job does (parent, data
snapshot, hyper-parameters, held-out metrics). Speaks the job protocol (:mod:`endoreview.jobs.protocol`); exit
codes 0 succeeded, 1 failed, 2 bad arguments, 3 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from endoreview.jobs.finetune import register_result, run_child, select_tasks, start_model
from endoreview.jobs.protocol import EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE, emit
from endoreview.jobs.runner import CancelFlag, JobContext, setup_logging
from endoreview.store import Store, StoreError
from endoreview.store.records import JobState

log = logging.getLogger("endoreview.services.finetune_resume")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endoreview.services.finetune_resume")
    p.add_argument("--job-id", type=int, required=True)
    p.add_argument("--db", help="database URL (default: $ENDOREVIEW_DB_URL or the user data directory)")
    args = p.parse_args(argv)
    try:
        store = Store.open(args.db)
    except StoreError as e:
        emit("error", message=str(e))
        return EXIT_FAILED
    with store:
        try:
            ctx = JobContext(store, "finetune", args.job_id, {})
            old_id = int(ctx.job.params["resume_of"])
            old = store.get_job(old_id)
        except (StoreError, ValueError, KeyError) as e:
            emit("error", message=f"job {args.job_id} cannot be resumed: {e}")
            return EXIT_USAGE
        setup_logging(ctx.job.log_path)
        cancel = CancelFlag().install()
        ctx.start()
        try:
            return run(store, ctx, old.id, dict(ctx.job.params), cancel)
        except Exception as e:  # the job row must never stay "running"
            log.exception("resumed finetune job %d failed", ctx.id)
            ctx.finish(JobState.FAILED, {}, f"{type(e).__name__}: {e}")
            return EXIT_FAILED


def run(store: Store, ctx: JobContext, old_id: int, params: dict[str, Any], cancel: CancelFlag) -> int:
    from core_model.data.manifest import load_manifest
    from endoreview.paths import data_dir

    work = data_dir() / "runs" / f"job-{old_id}"
    manifest_path = work / "manifest.json"
    run_dir = work / "run"
    manifest = load_manifest(manifest_path)
    tasks = select_tasks(manifest, params.get("tasks"))
    init_dir, parent_id = start_model(store, params)
    cmd = [
        sys.executable, "-m", "core_model", "finetune",
        "--manifest", str(manifest_path), "--out", str(run_dir), "--init", init_dir,
        "--tasks", ",".join(tasks), "--preset", str(params.get("preset") or "default"),
    ]  # fmt: skip
    for flag, key in (("--epochs", "epochs"), ("--mode", "mode"), ("--device", "device")):
        if params.get(key) is not None:
            cmd += [flag, str(params[key])]
    for item in params.get("overrides") or []:
        cmd += ["--set", item]
    resumed = (run_dir / "checkpoint.pth").is_file()
    if resumed:
        cmd.append("--resume")
    ctx.progress(
        0.01, f"resuming job {old_id}" if resumed else f"restarting job {old_id} (no finished epoch)"
    )
    log.info("job %d continues job %d (resume=%s)", ctx.id, old_id, resumed)
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
    return register_result(
        store,
        ctx,
        done,
        manifest,
        manifest_path,
        video_ids=[int(v) for v in params.get("video_ids") or []],
        parent_id=parent_id,
        params=params,
        run_dir=run_dir,
        notes=f"fine-tuned by job {old_id}, resumed by job {ctx.id}",
        extra_snapshot={"resumed_from_job": old_id},
    )


if __name__ == "__main__":
    sys.exit(main())
