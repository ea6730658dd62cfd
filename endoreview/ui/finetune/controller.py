"""``FinetuneController``: opens the fine-tune dialog, starts the job in the jobs panel with a live monitor, and
resumes stopped runs. Database work runs on the task runner's worker threads; the job is a subprocess."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from endoreview import RESEARCH_NOTICE
from endoreview.ui.finetune.dialog import FinetuneDialog
from endoreview.ui.finetune.monitor import FinetuneMonitor
from endoreview.ui.jobs_panel import Job, JobsPanel
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)


class FinetuneController(QObject):
    message = Signal(str)
    started = Signal(object)  # Job
    finished = Signal(object)  # done event of the job (dict)
    openRegistry = Signal(int)

    def __init__(
        self, backend: Any, runner: TaskRunner, jobs: JobsPanel, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.backend, self.runner, self.jobs = backend, runner, jobs
        self.dialog: FinetuneDialog | None = None
        self.monitors: list[FinetuneMonitor] = []
        self.overrides: tuple[str, ...] = ()  # passed to every plan (tests: tiny shapes)

    def _store(self) -> Any:
        return self.backend._raw_store  # noqa: SLF001 - used on worker threads only

    def open_dialog(
        self, parent: QWidget | None = None, video_ids: list[int] | None = None
    ) -> FinetuneDialog:
        dlg = FinetuneDialog(self._store, self.runner, parent)
        dlg.overrides = tuple(self.overrides)
        if video_ids:
            dlg.planned.connect(lambda _p, ids=list(video_ids): None)
        dlg.startRequested.connect(self.start)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        dlg.show()
        self.dialog = dlg
        return dlg

    def start(self, plan: Any, name: str = "", activate: bool = False) -> None:
        def work() -> tuple[str, list[str], dict[str, str], int]:
            from endoreview.services.finetune_plan import create_finetune_job
            from endoreview.services.jobs import JobService

            store = self._store()
            job = create_finetune_job(store, plan, name=name or None, activate=activate)
            js = JobService(store)
            env = {
                k: v for k, v in js.environment().items() if k in ("ENDOREVIEW_DB_URL", "PYTHONUNBUFFERED")
            }
            n = len(plan.video_ids)
            return (
                f"Fine-tune “{plan.parent_name}” on {n} video{'s' if n != 1 else ''}",
                js.command(job),
                env,
                job.id,
            )

        self.runner.submit(
            "finetune job", work, on_done=lambda r: self._launch(*r, epochs=plan.epochs), on_error=self._error
        )

    def resume(self, job_id: int) -> None:
        def work() -> tuple[str, list[str], dict[str, str], int, int]:
            from endoreview.services.finetune_plan import create_resume_job, resume_command
            from endoreview.services.jobs import JobService

            store = self._store()
            job = create_resume_job(store, job_id)
            env = {
                k: v
                for k, v in JobService(store).environment().items()
                if k in ("ENDOREVIEW_DB_URL", "PYTHONUNBUFFERED")
            }
            return (
                f"Resume fine-tune (job {job_id})",
                resume_command(job),
                env,
                job.id,
                int(job.params.get("epochs") or 1),
            )

        self.runner.submit(
            "resume finetune", work, on_done=lambda r: self._launch(*r[:4], epochs=r[4]), on_error=self._error
        )

    def _error(self, exc: BaseException) -> None:
        self.message.emit(f"Cannot start the fine-tune: {exc}")

    def _launch(self, title: str, argv: list[str], env: dict[str, str], job_row: int, epochs: int = 1) -> Job:
        monitor = FinetuneMonitor(title, epochs)
        monitor.job_row = job_row  # type: ignore[attr-defined]
        job = self.jobs.start(title, argv, on_event=monitor.on_event, env=env)
        # a fine-tune finishes its current step and records "cancelled" on SIGTERM; give it time before a kill, so a
        # resume never races a checkpoint still being written
        monitor.cancelRequested.connect(lambda: job.cancel(grace_ms=30000))
        monitor.openRegistry.connect(self.openRegistry.emit)
        job.finished.connect(lambda entry, m=monitor: self._finished(m, entry))
        monitor.job = job  # type: ignore[attr-defined]
        monitor.show()
        self.monitors.append(monitor)
        self.message.emit(f"{title}: running in the background. {RESEARCH_NOTICE}")
        self.started.emit(job)
        return job

    def _finished(self, monitor: FinetuneMonitor, entry: Any) -> None:
        if monitor.state == "running":  # the process ended without a done line (killed, crashed)
            monitor.finish(entry.state, {}, entry.error or f"exited with code {entry.exit_code}")
        self.finished.emit({"state": monitor.state, "result": monitor.result, "job": entry.id})
