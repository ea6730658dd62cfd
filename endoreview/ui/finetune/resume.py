"""The jobs panel's “stopped fine-tunes” section: each fine-tune that failed, was cancelled or was killed (also in an
earlier session) with a Resume button. The run continues from its last finished epoch on the same data snapshot."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from endoreview.ui.tasks import TaskRunner


class ResumePanel(QWidget):
    resumeRequested = Signal(int)  # job id

    def __init__(self, store_fn: Any, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resumePanel")
        self._store_fn, self.runner = store_fn, runner
        self.jobs: list[Any] = []
        self.buttons: dict[int, QPushButton] = {}
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(2, 2, 2, 2)
        self.setVisible(False)

    def refresh(self) -> None:
        def work() -> list:
            from endoreview.services.finetune_plan import resumable_jobs

            return resumable_jobs(self._store_fn())

        self.runner.submit("resumable jobs", work, on_done=self._render)

    def _render(self, jobs: list) -> None:
        while self._lay.count():
            w = self._lay.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.jobs, self.buttons = list(jobs), {}
        if jobs:
            head = QLabel("<b>Stopped fine-tunes</b>")
            self._lay.addWidget(head)
        for job in jobs:
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            what = f"Job {job.id} ({job.state}): {html.escape(job.message or '')}"
            label = QLabel(what)
            label.setWordWrap(True)
            btn = QPushButton("Resume")
            btn.setToolTip("Continue from the last finished epoch on the same data snapshot")
            btn.clicked.connect(lambda _c=False, j=job.id: self._resume(j))
            h.addWidget(label, 1)
            h.addWidget(btn)
            self.buttons[job.id] = btn
            self._lay.addWidget(row)
        self.setVisible(bool(jobs))

    def _resume(self, job_id: int) -> None:
        btn = self.buttons.get(job_id)
        if btn is not None:
            btn.setEnabled(False)
        self.resumeRequested.emit(job_id)
