"""Library actions: refresh, import (with a cancellable progress dialog), thumbnails and proxies in the background."""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QToolButton, QWidget

from endoreview.ui.library import LibraryRow, LibraryWidget
from endoreview.ui.proxies import MediaQueue, MediaRequest
from endoreview.ui.tasks import Task, TaskRunner
from endoreview.ui.views import ImportSummary, LibraryViews

log = logging.getLogger(__name__)

VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.avi *.webm *.m4v *.mpg *.mpeg);;All files (*)"


class _ImportBridge(QObject):
    progress = Signal(int, int, str)


class LibraryController(QObject):
    refreshed = Signal(list)  # rows
    imported = Signal(object)  # ImportSummary
    relinked = Signal(int)
    message = Signal(str)

    def __init__(
        self, views: LibraryViews, runner: TaskRunner, media: MediaQueue, widget: LibraryWidget, parent=None
    ) -> None:
        super().__init__(parent)
        self.views, self.runner, self.media, self.widget = views, runner, media, widget
        self.ready = False
        self._import_task: Task | None = None
        self.failures: list[tuple[str, str]] = []  # (file, reason) of imports that failed, until dismissed
        self.failure_button: QToolButton | None = None
        self.failure_dialog: QMessageBox | None = None
        self._dialog: QProgressDialog | None = None
        media.thumbReady.connect(self.widget.model.set_thumb)
        widget.filesDropped.connect(self.import_paths)

    def refresh(self) -> None:
        self.runner.submit(
            "library",
            self.views.rows,
            on_done=self._on_rows,
            on_error=lambda e: self.message.emit(f"Library: {e}"),
        )

    def _on_rows(self, rows: list[LibraryRow]) -> None:
        self.widget.set_rows(rows)
        for r in rows:
            if r.exists and r.thumb is None:
                self.media.request(MediaRequest(r.video_id, r.path, r.frame_count))
        self.refreshed.emit(rows)

    # ---- import -----------------------------------------------------------------------------------------------
    def ask_import_files(self, parent: QWidget) -> None:
        files, _ = QFileDialog.getOpenFileNames(parent, "Import videos", "", VIDEO_FILTER)
        if files:
            self.import_paths(files)

    def ask_import_folder(self, parent: QWidget) -> None:
        folder = QFileDialog.getExistingDirectory(parent, "Import a folder of videos (or an image sequence)")
        if folder:
            self.import_paths([folder])

    def ask_relink(self, parent: QWidget) -> None:
        folder = QFileDialog.getExistingDirectory(
            parent, "Find moved videos in this folder (matched by content)"
        )
        if folder:
            self.relink([folder])

    def relink(self, folders: list[str]) -> Task:
        self.message.emit("Looking for moved videos…")

        def done(n: int) -> None:
            self.message.emit(f"Re-linked {n} moved video(s)." if n else "No missing video was found there.")
            self.relinked.emit(n)
            self.refresh()

        return self.runner.submit(
            "relink",
            self.views.relink,
            list(folders),
            on_done=done,
            on_error=lambda e: self.message.emit(f"Re-link failed: {e}"),
        )

    def import_paths(self, paths: list[str], show_dialog: bool = True) -> Task:
        bridge = _ImportBridge(self)
        if show_dialog:
            dlg = QProgressDialog("Importing…", "Cancel", 0, 0, self.widget)
            dlg.setWindowTitle("Import videos")
            dlg.setWindowModality(Qt.WindowModality.WindowModal)
            dlg.setMinimumDuration(400)
            dlg.setAutoClose(False)
            dlg.setAutoReset(False)
            self._dialog = dlg

            def on_progress(done: int, total: int, name: str) -> None:
                dlg.setMaximum(max(total, 1))
                dlg.setValue(done)
                dlg.setLabelText(
                    f"Importing {done + 1 if done < total else done} of {total}: {name}"
                    if name
                    else "Finishing…"
                )

            bridge.progress.connect(on_progress)
        stop = threading.Event()  # not Task.cancel: a cancelled import still reports what it imported
        task = self.runner.submit(
            "import",
            lambda: self.views.import_paths(
                list(paths), progress=bridge.progress.emit, cancelled=stop.is_set
            ),
            on_done=self._on_imported,
            on_error=self._on_import_error,
        )
        task.stop = stop
        if show_dialog:
            self._dialog.canceled.connect(stop.set)
        self._import_task = task
        return task

    def _close_dialog(self) -> None:
        if self._dialog is not None:
            self._dialog.reset()
            self._dialog.close()
            self._dialog = None

    def _on_imported(self, summary: ImportSummary) -> None:
        self._close_dialog()
        text = f"Imported {summary.imported} video(s)"
        if summary.already_present:
            text += f", {summary.already_present} already in the library"
        if summary.failed:
            text += f"; {len(summary.failed)} failed: " + "; ".join(
                f"{p}: {why}" for p, why in summary.failed[:3]
            )
        self.message.emit(text)
        if summary.failed:
            self._show_failures(list(summary.failed), text)
        self.imported.emit(summary)
        self.refresh()

    def _on_import_error(self, exc: BaseException) -> None:
        self._close_dialog()
        self.message.emit(f"Import failed: {exc}")
        self._show_failures([], f"Import failed: {exc}")
        self.refresh()

    def _show_failures(self, failed: list[tuple[str, str]], headline: str) -> None:
        """A failed import stays in sight until dismissed: a warning button in the status bar (a status-bar line is
        overwritten within moments) that lists every file and its reason; it never takes the keyboard focus."""
        self.failures += failed or [("", headline)]
        btn = self.failure_button
        if btn is None:
            btn = self.failure_button = QToolButton()
            btn.setObjectName("importFailures")
            btn.setStyleSheet("color: #16161c; background: #ffb74d; font-weight: 700; padding: 1px 8px;")
            btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            btn.clicked.connect(self.show_failure_details)
            self.widget.window().statusBar().addPermanentWidget(btn)
        n = len(self.failures)
        btn.setText(f"⚠ {n} import problem(s) — details")
        btn.setToolTip("\n".join(f"{p}: {why}" if p else why for p, why in self.failures[-10:]))
        btn.show()

    def show_failure_details(self) -> QMessageBox:
        """The list of files that were not imported and why; closing it dismisses the warning."""
        box = QMessageBox(self.widget.window())
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Files not imported")
        box.setText(f"{len(self.failures)} file(s) could not be imported; nothing else was changed.")
        lines = [f"• {p}\n    {why}" if p else f"• {why}" for p, why in self.failures]
        box.setInformativeText(
            "\n".join(lines[:8]) + (f"\n… and {len(lines) - 8} more" if len(lines) > 8 else "")
        )
        box.setDetailedText("\n".join(f"{p}: {why}" for p, why in self.failures))
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.finished.connect(self.dismiss_failures)
        box.open()
        self.failure_dialog = box
        return box

    def dismiss_failures(self) -> None:
        self.failures = []
        if self.failure_button is not None:
            self.failure_button.hide()
