"""What every job process shares, in one wrapper: :func:`run_job` parses a kind's options, opens the store, takes
over (or creates) the job row, logs to stderr + the job's log file, turns SIGTERM/SIGINT into a graceful cancel and
records any failure in the job row, so a kind's own code is only its work (:class:`JobKind`, :class:`JobRun`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from endoreview.jobs.protocol import EXIT_FAILED, EXIT_USAGE, emit
from endoreview.store import StoreError
from endoreview.store.records import Job, JobState

if TYPE_CHECKING:
    from endoreview.store import Store

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
    (decoders, the predictor) may log paths, and file names often carry patient identifiers. A name is replaced
    only where it stands as a whole (not inside a longer word or file name: a video named ``endo.avi`` must not
    turn ``endofm`` or ``result_endo.avi`` into ``<video 5>fm`` / ``result_<video 5>.avi``)."""

    _EDGE = r"A-Za-z0-9_\-"  # characters that continue a name: a match must not touch one on either side

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._pattern_of: tuple[str, ...] = ()

    def register(self, video_id: int, path: Path) -> None:
        """Any thread: the names are swapped in whole, so a record logged meanwhile sees the old or the new set."""
        tag = f"<video {video_id}>"
        names = dict(self._names)
        for name in (str(path), str(path.resolve()), path.name, path.stem):
            if len(name) >= 4:
                names[name] = tag
        self._names = names

    def scrub(self, text: str) -> str:
        if not self._names:
            return text
        if self._pattern is None or self._pattern_of != tuple(self._names):
            self._pattern_of = tuple(self._names)
            alts = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
            self._pattern = re.compile(f"(?<![{self._EDGE}])(?:{alts})(?![{self._EDGE}])")
        return self._pattern.sub(lambda m: self._names[m.group(0)], text)

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


@dataclass(frozen=True)
class JobKind:
    """A kind of job (:mod:`endoreview.jobs.registry`): its options and its work.

    ``row``: the job keeps a row in the jobs table (state, progress, result; ``--job-id`` takes one over);
    ``store``: it needs the database at all (``--db``). ``run`` gets a :class:`JobRun` and returns the exit code.
    """

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[JobRun], int]
    row: bool = True
    store: bool = True

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"python -m endoreview.jobs {self.name}", description=self.summary)
        if self.store:
            p.add_argument(
                "--db", help="database URL (default: $ENDOREVIEW_DB_URL or the user data directory)"
            )
            p.add_argument("--reviewer", help="recorded as the author (default: the OS login)")
        if self.row:
            p.add_argument("--job-id", type=int, help="take parameters from (and report into) this job row")
        self.add_arguments(p)
        return p


@dataclass
class JobRun:
    """What a kind's ``run`` works with: its parameters (options, or the job row's), the cancel flag, and where it
    has them the store and job context. ``deps`` are collaborators the caller of :func:`run_job` injected (a test's
    predictor factory); nothing a job row or command line says can set them."""

    params: dict[str, Any]
    cancel: CancelFlag
    store: Store | None = None
    ctx: JobContext | None = None
    deps: dict[str, Any] = field(default_factory=dict)


_NOT_PARAMS = ("db", "job_id", "reviewer")


def run_job(kind: JobKind, argv: list[str], **deps: Any) -> int:
    """Run one job of ``kind`` in this process with command-line ``argv``; returns the exit code."""
    parser = kind.parser()
    args = parser.parse_args(argv)
    cancel = CancelFlag().install()
    if not kind.store:
        setup_logging(None)
        return _guarded(kind, JobRun(vars(args), cancel, deps=deps))
    try:
        from endoreview.store import Store  # here, not at import: the app's log scrubber lives in this module

        store = Store.open(args.db, reviewer=args.reviewer)
    except StoreError as e:
        emit("error", message=str(e))
        emit("done", state="failed", result={}, message=str(e))
        return EXIT_FAILED
    with store:
        if not kind.row:
            setup_logging(None)
            return _guarded(kind, JobRun(vars(args), cancel, store, deps=deps))
        given = {k: v for k, v in vars(args).items() if k not in _NOT_PARAMS and v not in (None, False, [])}
        try:
            ctx = JobContext(store, kind.name, args.job_id, given)
        except (StoreError, ValueError) as e:
            emit("error", message=str(e))
            return EXIT_USAGE
        if args.job_id is not None:  # the row's parameters over the kind's defaults; the row chooses no code
            defaults = {k: v for k, v in vars(parser.parse_args([])).items() if k not in _NOT_PARAMS}
            params = {**defaults, **ctx.job.params}
        else:
            params = {k: v for k, v in vars(args).items() if k not in _NOT_PARAMS}
        setup_logging(ctx.job.log_path)
        ctx.start()
        try:
            return kind.run(JobRun(params, cancel, store, ctx, deps))
        except Exception as e:  # the job row must never stay "running"
            log.exception("%s job %d failed", kind.name, ctx.id)
            ctx.finish(JobState.FAILED, {}, f"{type(e).__name__}: {e}")
            return EXIT_FAILED


def _guarded(kind: JobKind, job: JobRun) -> int:
    try:
        return kind.run(job)
    except Exception as e:  # a row-less job still ends with a protocol line that says why
        log.exception("%s job failed", kind.name)
        emit("error", message=f"{type(e).__name__}: {e}")
        emit("done", state="failed", result={}, message=f"{type(e).__name__}: {e}")
        return EXIT_FAILED
