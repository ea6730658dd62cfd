"""``RegistryController``: opens the Models window and comparisons, runs comparisons as jobs in the jobs panel, and
opens a disagreeing frame in the player."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from endoreview.services.app import AppServices
from endoreview.ui.jobs_panel import JobsPanel
from endoreview.ui.registry.compare import CompareView, held_out
from endoreview.ui.registry.view import RegistryView
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)


class RegistryController(QObject):
    message = Signal(str)
    changed = Signal()

    def __init__(
        self,
        services: AppServices,
        runner: TaskRunner,
        jobs: JobsPanel,
        open_frame: Callable[[int, int], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.services, self.runner, self.jobs, self._open_frame = services, runner, jobs, open_frame
        self.view: RegistryView | None = None
        self.compares: list[CompareView] = []

    def _store(self) -> Any:
        return self.services.store  # used on worker threads only

    def open(self, parent: QWidget | None = None, select: int | None = None) -> RegistryView:
        if self.view is None:
            self.view = RegistryView(self._store, self.runner, parent)
            self.view.compareRequested.connect(self.compare)
            self.view.changed.connect(self.changed.emit)
            self.view.message.connect(self.message.emit)
        else:
            self.view.refresh(select)
        if select is not None:
            self.view.refresh(select)
        self.view.show()
        self.view.raise_()
        return self.view

    def compare(self, a_id: int, b_id: int) -> None:
        def work() -> tuple[Any, Any, tuple[str, str] | None]:
            from endoreview.services.registry import RegistryService

            reg = RegistryService(self._store())
            a, b = reg.get(a_id), reg.get(b_id)
            return a, b, held_out(b) or held_out(a)

        self.runner.submit("compare", work, on_done=self._start_compare, on_error=self._error)

    def _error(self, exc: BaseException) -> None:
        self._tell(f"Cannot compare: {exc}")

    def _tell(self, text: str) -> None:
        """Say it in front of the Models window (the status bar is behind it), and in the status bar."""
        self.message.emit(text)
        if self.view is not None and self.view.isVisible():
            from PySide6.QtWidgets import QMessageBox

            box = QMessageBox(
                QMessageBox.Icon.Warning, "Compare", text, QMessageBox.StandardButton.Ok, self.view
            )
            box.open()
            self.last_notice = box

    def _start_compare(self, found: tuple[Any, Any, tuple[str, str] | None]) -> None:
        a, b, ho = found
        if ho is None:
            self._tell(
                f"Neither {a.name} nor {b.name} records held-out videos to compare on (fine-tune with two or more "
                "videos so one is held out)."
            )
            return
        view = CompareView(
            a, b, ho[0], ho[1], self.runner, self.services.jobs, start_job=self._start_job, parent=self.view
        )
        if self._open_frame is not None:
            view.openFrame.connect(self._open_frame)
        self.compares.append(view)
        view.show()
        view.start()

    def _start_job(self, launch: Any, on_event: Any) -> Any:
        return self.jobs.start(launch.title, launch.argv, on_event=on_event, env=launch.env)
