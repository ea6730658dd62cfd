"""What every job process shares: logging to stderr + a log file, SIGTERM -> graceful cancel, job-row state."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from endoreview.jobs.protocol import emit
from endoreview.store import Store
from endoreview.store.records import Job, JobState

log = logging.getLogger(__name__)


class CancelFlag:
    """Set by SIGTERM/SIGINT; checked between batches so work stops at a consistent point."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> CancelFlag:
        def handler(signum: int, _frame: Any) -> None:
            log.info("received signal %d: cancelling after the current batch", signum)
            self._event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        return self

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


class VideoNameScrubber(logging.Filter):
    """Replaces every registered video path and file name in log records by ``<video ID>``: libraries we call
    (decoders, the predictor) may log paths, and file names often carry patient identifiers."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def register(self, video_id: int, path: Path) -> None:
        tag = f"<video {video_id}>"
        for name in (str(path), str(path.resolve()), path.name, path.stem):
            if len(name) >= 4:
                self._names[name] = tag

    def scrub(self, text: str) -> str:
        for name in sorted(self._names, key=len, reverse=True):
            if name in text:
                text = text.replace(name, self._names[name])
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._names:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


SCRUBBER = VideoNameScrubber()


def setup_logging(log_path: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]  # stderr: stdout is the protocol
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, encoding="utf-8"))
    for h in handlers:
        h.addFilter(SCRUBBER)
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


class JobContext:
    """The job row of this process: created here for headless use, or taken over by ``--job-id``."""

    def __init__(self, store: Store, kind: str, job_id: int | None, params: dict[str, Any]):
        self.store = store
        if job_id is None:
            job = store.create_job(kind, params)
        else:
            job = store.get_job(job_id)
            if job.kind != kind:
                raise ValueError(f"job {job_id} is a {job.kind} job, not {kind}")
            if job.state != JobState.QUEUED:
                raise ValueError(f"job {job_id} is already {job.state.value}; start a new job instead")
        self.job: Job = job
        if not job.log_path:
            from endoreview.paths import logs_dir

            self.job = store.update_job(job.id, log_path=str(logs_dir() / f"job-{job.id}-{kind}.log"))

    @property
    def id(self) -> int:
        return self.job.id

    def start(self) -> None:
        self.job = self.store.update_job(self.id, state=JobState.RUNNING, pid=os.getpid(), progress=0.0)
        emit("started", job=self.id, kind=self.job.kind)

    def progress(self, fraction: float, message: str = "", **fields: Any) -> None:
        fraction = max(0.0, min(1.0, fraction))
        self.store.update_job(self.id, progress=fraction, message=message)
        emit("progress", job=self.id, fraction=round(fraction, 4), message=message, **fields)

    def finish(self, state: JobState, result: dict[str, Any], message: str = "") -> None:
        changes: dict[str, Any] = {"state": state, "result": result, "message": message}
        if state == JobState.SUCCEEDED:
            changes["progress"] = 1.0
        self.job = self.store.update_job(self.id, **changes)
        emit("done", job=self.id, state=str(state), result=result, message=message)
