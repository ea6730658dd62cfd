"""The built-in demo from the app: generate + import phantom videos in the background, then analyse them with the
demo model as an ordinary predict job (or say clearly that the demo model is not installed)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from endoreview.media.guard import check_off_gui_thread
from endoreview.services.app import AppServices
from endoreview.ui.analysis import AnalysisController
from endoreview.ui.library_controller import LibraryController
from endoreview.ui.tasks import Task, TaskRunner

log = logging.getLogger(__name__)


class _Progress(QObject):
    progress = Signal(int, int, str)


class DemoController(QObject):
    message = Signal(str)
    ready = Signal(object)  # DemoResult
    noticeChanged = Signal(str)

    def __init__(
        self,
        services: AppServices,
        runner: TaskRunner,
        library: LibraryController,
        analysis: AnalysisController,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.services, self.runner, self.library, self.analysis = services, runner, library, analysis
        self.running = False
        self.result = None
        self.notice: str | None = None
        self._bridge = _Progress(self)
        self._bridge.progress.connect(self._progress)
        self.task: Task | None = None
        self.spec = None  # DemoSpec; None = the default demo

    def _progress(self, done: int, total: int, text: str) -> None:
        self.message.emit(f"Demo: {text} ({done + 1}/{total})")
        self.library.widget.set_empty_text(f"Setting up the demo: {text} ({done + 1} of {total})…")

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        self.library.widget.set_empty_text("Setting up the demo: generating synthetic endoscopy videos…")
        self.message.emit("Setting up the demo (synthetic endoscopy videos)…")

        def work(task: Task):
            check_off_gui_thread("db", "demo set-up")
            from endoreview.services.demo import DemoSpec, setup_demo

            return setup_demo(
                self.services.store,  # handed to a service on this worker thread
                self.spec or DemoSpec(),
                progress=self._bridge.progress.emit,
                cancelled=lambda: task.cancelled,
            )

        self.task = self.runner.submit(
            "demo", work, pass_task=True, on_done=self._on_ready, on_error=self._on_error
        )

    def _on_error(self, exc: BaseException) -> None:
        self.running = False
        self.message.emit(f"The demo could not be set up: {exc}")
        self.library.widget.set_empty_text(f"The demo could not be set up:\n{exc}")

    def _on_ready(self, result) -> None:
        self.running = False
        self.result = result
        self.library.refresh()
        if result.notice:
            self.notice = result.notice
            self.noticeChanged.emit(result.notice)
            self.message.emit(result.notice)
        elif result.to_analyse:
            self.analysis.analyse(list(result.to_analyse), model_dir=result.model_dir)
        else:
            self.message.emit("Demo ready: double-click a video to review it.")
        self.ready.emit(result)
