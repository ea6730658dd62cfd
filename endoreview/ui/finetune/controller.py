"""``FinetuneController``: opens the fine-tune dialog, starts the job in the jobs panel with a live monitor, and
resumes stopped runs. Database work runs on the task runner's worker threads; the job is a subprocess."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from endoreview import RESEARCH_NOTICE
from endoreview.services.app import AppServices
from endoreview.services.jobs import Launch
from endoreview.services.records import JobState
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
        self, services: AppServices, runner: TaskRunner, jobs: JobsPanel, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.services, self.runner, self.jobs = services, runner, jobs
        self.dialog: FinetuneDialog | None = None
        self.monitors: list[FinetuneMonitor] = []
        self.overrides: tuple[str, ...] = ()  # passed to every plan (tests: tiny shapes)

    def _store(self) -> Any:
        return self.services.store  # used on worker threads only

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
        def work() -> Launch:
            from endoreview.services.finetune_plan import create_finetune_job

            job = create_finetune_job(self._store(), plan, name=name or None, activate=activate)
            n = len(plan.video_ids)
            return self.services.jobs.launch(
                job, f"Fine-tune “{plan.parent_name}” on {n} video{'s' if n != 1 else ''}"
            )

        self.runner.submit(
            "finetune job", work, on_done=lambda r: self._launch(r, epochs=plan.epochs), on_error=self._error
        )

    def resume(self, job_id: int) -> None:
        def work() -> tuple[Launch, int]:
            from endoreview.services.finetune_plan import create_resume_job

            job = create_resume_job(self._store(), job_id)
            launch = self.services.jobs.launch(job, f"Resume fine-tune (job {job_id})")
            return launch, int(job.params.get("epochs") or 1)

        self.runner.submit(
            "resume finetune", work, on_done=lambda r: self._launch(r[0], epochs=r[1]), on_error=self._error
        )

    def _error(self, exc: BaseException) -> None:
        self.message.emit(f"Cannot start the fine-tune: {exc}")

    def _launch(self, launch: Launch, epochs: int = 1) -> Job:
        monitor = FinetuneMonitor(launch.title, epochs)
        monitor.job_row = launch.job_id  # type: ignore[attr-defined]
        job = self.jobs.start(launch.title, launch.argv, on_event=monitor.on_event, env=launch.env)
        # a fine-tune finishes its current step and records "cancelled" on SIGTERM; give it time before a kill, so a
        # resume never races a checkpoint still being written
        monitor.cancelRequested.connect(lambda: job.cancel(grace_ms=30000))
        monitor.openRegistry.connect(self.openRegistry.emit)
        job.finished.connect(lambda entry, m=monitor: self._finished(m, entry))
        monitor.job = job  # type: ignore[attr-defined]
        monitor.show()
        self.monitors.append(monitor)
        self.message.emit(f"{launch.title}: running in the background. {RESEARCH_NOTICE}")
        self.started.emit(job)
        return job

    def _finished(self, monitor: FinetuneMonitor, entry: Any) -> None:
        if monitor.state == JobState.RUNNING:  # the process ended without a done line (killed, crashed)
            monitor.finish(entry.state, {}, entry.error or f"exited with code {entry.exit_code}")
        self.finished.emit({"state": monitor.state, "result": monitor.result, "job": entry.id})
