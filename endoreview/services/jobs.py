"""The one launcher: job rows, what to run for them, cancelling and reaping — without Qt.

Every subprocess the app or a job starts is built here (:func:`module_command` is the only place that writes
``python -m``): a job of a registered kind (:mod:`endoreview.jobs.registry`) is ``python -m endoreview.jobs <kind>
--job-id N`` with the database URL in the environment (never on the command line, so passwords stay out of ``ps``);
the model library's own tools run as ``python -m core_model …`` (:func:`core_model_command`).

:meth:`JobService.launch` returns a :class:`Launch` (title, argv, environment) that the caller starts (the app in a
``QProcess``, a test or a job with ``subprocess``). :meth:`JobService.cancel` signals only processes this service
started itself (:meth:`JobService.started`): a job row can name any pid, and on a shared database anyone can write
one, so the row never chooses which process is signalled. :meth:`JobService.reap` marks jobs whose process died
without a word as failed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from endoreview.media.guard import check_off_gui_thread
from endoreview.store.records import Job, JobState

if TYPE_CHECKING:
    from endoreview.store import Store

FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
JOBS_MODULE = "endoreview.jobs"
# what a job process inherits from the launcher besides the whole environment of the app
JOB_ENV_KEYS = ("ENDOREVIEW_DB_URL", "PYTHONUNBUFFERED")


def module_command(module: str, *args: str, python: str | None = None) -> list[str]:
    """``python -m module args…`` with this interpreter: the one place a subprocess command line is written."""
    return [python or sys.executable, "-m", module, *[str(a) for a in args]]


def core_model_command(*args: str) -> list[str]:
    """``python -m core_model …`` (``endofm``): fine-tuning, checkpoint conversion."""
    return module_command("core_model", *args)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Launch:
    """What to run for a job: start ``argv`` with ``env`` added to the caller's environment."""

    title: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    job_id: int | None = None


class JobService:
    """``job_module`` is the entry module of job processes (``endoreview.jobs``); the app's composition root may
    give another one that wraps it (tests use one that injects a fast predictor)."""

    def __init__(self, store: Store | None, job_module: str = JOBS_MODULE, python: str | None = None):
        self.store = store
        self.host = socket.gethostname()
        self.job_module = job_module
        self.python = python
        self._pids: dict[int, int] = {}  # job id -> pid of a process this service started

    # ---- rows -----------------------------------------------------------------------------------------------
    def create(self, kind: str, **params: Any) -> Job:
        """A queued job row; ``params`` are the job's CLI options by their long names (``video_ids=[1, 2]``)."""
        return self._store().create_job(kind, {**params, "host": self.host})

    def get(self, job_id: int) -> Job:
        return self._store().get_job(job_id)

    def list(self, **filters: Any) -> list[Job]:
        return self._store().list_jobs(**filters)

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("this job service has no database")
        return self.store

    # ---- what to run ------------------------------------------------------------------------------------------
    def command(self, job: Job | str, *args: str) -> list[str]:
        """The command line of a job row (``--job-id``), or of a job kind that keeps no row (``args`` given)."""
        if isinstance(job, str):
            return module_command(self.job_module, job, *args, python=self.python)
        return module_command(self.job_module, job.kind, "--job-id", str(job.id), *args, python=self.python)

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus what a job needs: the database URL."""
        env = dict(os.environ if base is None else base)
        if self.store is not None:
            env["ENDOREVIEW_DB_URL"] = self.store.raw_url()
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def launch(self, job: Job | str, title: str, *args: str) -> Launch:
        """What to start for ``job`` (a row, or a row-less kind with its ``args``): argv + the environment to add."""
        env = {k: v for k, v in self.environment({}).items() if k in JOB_ENV_KEYS}
        return Launch(title, self.command(job, *args), env, job.id if isinstance(job, Job) else None)

    def predict(self, video_ids: list[int], model_dir: str | None = None) -> Launch:
        """Create a predict job row for ``video_ids`` with the model the resolver picks (``model_dir``, else the
        active one, else the demo model; :class:`~endoreview.services.model_resolver.NoModelError` when none is
        usable) and the device of the saved Settings, and return how to start it."""
        check_off_gui_thread("db", "create predict job")
        from endoreview.services.app_settings import load_settings
        from endoreview.services.model_resolver import model_params, resolve_model

        model = resolve_model(self._store(), model=model_dir, demo=True, usable_only=True)
        params: dict[str, Any] = {"video_ids": [int(v) for v in video_ids], **model_params(model)}
        try:
            device = load_settings().device
        except Exception:  # unreadable settings: the job picks its device itself
            device = "auto"
        if device != "auto":
            params["device"] = device
        job = self.create("predict", **params)
        n = len(video_ids)
        return self.launch(job, f"Analyse {n} video{'s' if n != 1 else ''} with {model.name}")

    # ---- processes ----------------------------------------------------------------------------------------------
    def started(self, job_id: int, pid: int) -> None:
        """Record that this process started job ``job_id`` as ``pid`` (so :meth:`cancel` may signal it)."""
        self._pids[int(job_id)] = int(pid)

    def cancel(self, job_id: int) -> bool:
        """Ask a job to stop: a queued one is cancelled at once; a running one gets SIGTERM only when this service
        started its process (the job stops after its current batch and records ``cancelled``)."""
        job = self._store().get_job(job_id)
        if job.state == JobState.QUEUED:
            self._store().update_job(job_id, state=JobState.CANCELLED, message="cancelled before it started")
            return True
        pid = self._pids.get(int(job_id))
        if job.state != JobState.RUNNING or pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> list[Job]:
        """Running jobs of this workstation whose process is gone become ``failed``."""
        out = []
        for job in self._store().list_jobs(state=JobState.RUNNING):
            if job.params.get("host", self.host) == self.host and job.pid is not None and not _alive(job.pid):
                out.append(
                    self._store().update_job(
                        job.id, state=JobState.FAILED, message="the job process ended unexpectedly"
                    )
                )
        return out

    def running_here(self) -> list[Job]:
        """Jobs of this workstation that are queued or running (what quitting the app would leave behind)."""
        jobs = [j for st in (JobState.RUNNING, JobState.QUEUED) for j in self._store().list_jobs(state=st)]
        return [j for j in jobs if j.params.get("host", self.host) == self.host]
