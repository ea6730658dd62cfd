"""File → Export…: the command line's export, in the app (same exporter, same options, same report).

The reviewer picks the format, which labels (reviewed only — the default, ground truth — or all, each with its
review state and score), which videos, the privacy options and a folder; the export runs off the GUI thread with a
progress bar and a Cancel, and ends with what was written and what the format could not carry.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from endoreview.interchange.exporter import FORMATS, STATE_FORMATS, Exporter, ExportOptions, ExportReport

FORMAT_NAMES = {
    "coco": "COCO JSON (RLE masks, boxes)",
    "coco-polygons": "COCO JSON (polygon masks)",
    "yolo-det": "YOLO detection (boxes)",
    "yolo-seg": "YOLO segmentation",
    "voc": "Pascal VOC (XML boxes)",
    "png-masks": "PNG masks",
    "cvat-video": "CVAT for video (XML tracks)",
    "csv": "CSV (segments, video classes)",
    "manifest": "Training manifest (reviewed labels)",
    "endofm-pretrain": "Endo-FM pretraining list (videos)",
}


class _Bridge(QObject):
    progress = Signal(int, int, str)


class ExportDialog(QDialog):
    """Built with the backend (its ``store`` and ``project``), the task runner and the selected video ids."""

    finished_export = Signal(object)  # ExportReport

    def __init__(
        self, backend: Any, runner: Any, selected: list[int] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export labels")
        self.backend, self.runner = backend, runner
        self.selected = list(selected or [])
        self.report: ExportReport | None = None
        self._stop = threading.Event()
        self._task: Any = None
        self._bridge = _Bridge(self)
        self._bridge.progress.connect(self._on_progress)

        self.format = QComboBox()
        for f in FORMATS:
            self.format.addItem(FORMAT_NAMES.get(f, f), f)
        self.format.currentIndexChanged.connect(self._sync)
        self.reviewed = QRadioButton("Reviewed labels only (accepted, edited, drawn): ground truth")
        self.all_labels = QRadioButton(
            "All labels, model suggestions too, each with its review state and score"
        )
        self.reviewed.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.reviewed)
        group.addButton(self.all_labels)
        self.all_labels.toggled.connect(self._sync)
        self.which_videos = QComboBox()
        self.which_videos.addItem("Every video of the project", "all")
        if self.selected:
            self.which_videos.addItem(f"The {len(self.selected)} selected video(s)", "selected")
            self.which_videos.setCurrentIndex(1)
        self.only_reviewed_videos = QCheckBox("Only videos whose review is marked finished")
        self.frames = QCheckBox("Write the labelled frames as images")
        self.pseudonymize = QCheckBox("Pseudonymize video names")
        self.strip = QCheckBox("Leave out reviewer names, times and source paths")
        self.blank = QCheckBox("Black out burned-in text (where set for the video)")
        for c in (self.pseudonymize, self.strip):
            c.setChecked(True)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("Folder to write into")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #ffb74d;")
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.export_btn = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_btn = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_btn.clicked.connect(self.start)
        self.close_btn.clicked.connect(self._close_or_cancel)

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Labels", self.reviewed)
        form.addRow("", self.all_labels)
        form.addRow("Videos", self.which_videos)
        form.addRow("", self.only_reviewed_videos)
        form.addRow("Frames", self.frames)
        form.addRow("Privacy", self.pseudonymize)
        form.addRow("", self.strip)
        form.addRow("", self.blank)
        form.addRow("Folder", row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self._sync()

    # ---- options ----------------------------------------------------------------------------------------------
    def options(self) -> ExportOptions:
        fmt = self.format.currentData()
        vids = self.selected if self.which_videos.currentData() == "selected" else None
        project = getattr(self.backend, "project", None)
        return ExportOptions(
            fmt,
            selection="all" if self.all_labels.isChecked() and fmt != "manifest" else "reviewed",
            video_ids=vids,
            project_id=None if vids is not None or project is None else project.id,
            video_status="reviewed" if self.only_reviewed_videos.isChecked() else None,
            frames=self.frames.isChecked(),
            pseudonymize=self.pseudonymize.isChecked(),
            strip_metadata=self.strip.isChecked(),
            blank_text=self.blank.isChecked(),
        )

    def _sync(self, *_a: Any) -> None:
        fmt = self.format.currentData()
        manifest = fmt == "manifest"
        self.all_labels.setEnabled(not manifest and fmt != "endofm-pretrain")
        if manifest and self.all_labels.isChecked():
            self.reviewed.setChecked(True)
        if self.all_labels.isChecked() and fmt not in STATE_FORMATS:
            self.note.setText(
                f"{FORMAT_NAMES.get(fmt, fmt)} cannot say which labels are unreviewed model suggestions: "
                "they would look like ground truth. Prefer COCO or CSV, or export reviewed labels only."
            )
        else:
            self.note.setText("")

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder.text())
        if d:
            self.folder.setText(d)

    # ---- running ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        out = self.folder.text().strip()
        if not out:
            self.status.setText("Choose a folder to export into.")
            return
        opt = self.options()
        store = self.backend.store
        self._stop.clear()
        self.bar.setVisible(True)
        self.bar.setRange(0, 0)
        self.status.setText("Exporting…")
        self.export_btn.setEnabled(False)
        self.close_btn.setText("Cancel")

        def work() -> ExportReport:
            return Exporter(store).export(
                out, opt, on_progress=self._bridge.progress.emit, should_cancel=self._stop.is_set
            )

        self._task = self.runner.submit("export", work, on_done=self._on_done, on_error=self._on_error)

    @property
    def running(self) -> bool:
        return self._task is not None

    def _on_progress(self, done: int, total: int, name: str) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        if name:
            self.status.setText(f"Exporting {done + 1} of {total}: {name}")

    def _on_done(self, rep: ExportReport) -> None:
        self._task = None
        self.report = rep
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        head = "Cancelled" if rep.cancelled else "Exported"
        text = f"{head}: {rep.labels} label(s) of {rep.videos} video(s) into {rep.out_dir}"
        if rep.frames_written:
            text += f", {rep.frames_written} frame image(s)"
        if rep.dropped:
            text += ".\nNot carried by this format: " + "; ".join(rep.dropped)
        if rep.failed:
            text += "\nFailed: " + "; ".join(f"{a}: {b}" for a, b in rep.failed[:5])
        self.status.setText(text)
        self._idle()
        self.finished_export.emit(rep)

    def _on_error(self, exc: BaseException) -> None:
        self._task = None
        self.status.setText(f"Export failed: {exc}")
        self._idle()

    def _idle(self) -> None:
        self.export_btn.setEnabled(True)
        self.close_btn.setText("Close")

    def _close_or_cancel(self) -> None:
        if self.running:
            self._stop.set()
            self.status.setText("Cancelling…")
            return
        self.reject()
