"""Starting, watching and cancelling job subprocesses (``python -m endoreview.jobs <kind>``), without Qt.

The app creates a job row here, starts :meth:`JobService.command` with :meth:`JobService.environment` (the
database URL travels in the environment, never on the command line) in a ``QProcess``, reads its JSON lines
(:func:`endoreview.jobs.protocol.parse_line`) and can :meth:`cancel` it (SIGTERM: the job stops after its
current batch and records ``cancelled``). :meth:`reap` marks jobs whose process died without a word as failed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from endoreview.store import Store
from endoreview.store.records import Job, JobState

FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobService:
    def __init__(self, store: Store):
        self.store = store
        self.host = socket.gethostname()

    def create(self, kind: str, **params: Any) -> Job:
        """A queued job row; ``params`` are the job's CLI options by their long names (``video_ids=[1, 2]``)."""
        return self.store.create_job(kind, {**params, "host": self.host})

    def command(self, job: Job) -> list[str]:
        return [sys.executable, "-m", "endoreview.jobs", job.kind, "--job-id", str(job.id)]

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["ENDOREVIEW_DB_URL"] = self.store.raw_url()
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def get(self, job_id: int) -> Job:
        return self.store.get_job(job_id)

    def list(self, **filters: Any) -> list[Job]:
        return self.store.list_jobs(**filters)

    def cancel(self, job_id: int) -> bool:
        """Ask a running job of this workstation to stop (SIGTERM); a queued one is cancelled at once."""
        job = self.store.get_job(job_id)
        if job.state == JobState.QUEUED:
            self.store.update_job(job_id, state=JobState.CANCELLED, message="cancelled before it started")
            return True
        if job.state != JobState.RUNNING or job.pid is None or job.params.get("host", self.host) != self.host:
            return False
        try:
            os.kill(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> list[Job]:
        """Running jobs of this workstation whose process is gone become ``failed``."""
        out = []
        for job in self.store.list_jobs(state=JobState.RUNNING):
            if job.params.get("host", self.host) == self.host and job.pid is not None and not _alive(job.pid):
                out.append(
                    self.store.update_job(
                        job.id, state=JobState.FAILED, message="the job process ended unexpectedly"
                    )
                )
        return out
