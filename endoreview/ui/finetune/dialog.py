"""The “Fine-tune” dialog: videos (reviewed ones ticked), tasks, starting model (the active one), time budget, and a
summary of what will happen (label counts per class, split, device, estimated time) with warnings.

The summary is computed by :func:`endoreview.services.finetune_plan.plan_finetune` on a worker thread each time the
choice changes; the dialog holds no domain state beyond the last plan it rendered.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from endoreview import RESEARCH_NOTICE
from endoreview.services.finetune_plan import label_name
from endoreview.ui.scale import fit_dialog
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

TASKS = (
    ("classification", "Video class (normal / abnormal)"),
    ("segmentation", "Polyp masks"),
    ("detection", "Polyp boxes"),
)


class FinetuneDialog(QDialog):
    """Emits ``startRequested(plan, name, activate)`` when the user clicks Start."""

    startRequested = Signal(object, str, bool)
    planned = Signal(object)  # FinetunePlan, each time the summary is refreshed

    def __init__(self, store_fn: Any, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune a new model version")
        self.setObjectName("finetuneDialog")
        self._store_fn = store_fn  # () -> Store, called on worker threads only
        self.runner = runner
        self.plan: Any = None
        self.overrides: tuple[str, ...] = ()  # extra engine options (``KEY=JSON``), e.g. tiny shapes in tests
        self._loading = True

        self.videos = QListWidget()
        self.videos.setMinimumHeight(140)
        self.task_boxes: dict[str, QCheckBox] = {}
        tasks_box = QGroupBox("Tasks")
        tl = QVBoxLayout(tasks_box)
        for key, text in TASKS:
            cb = QCheckBox(text)
            cb.setChecked(True)
            cb.toggled.connect(self._changed)
            self.task_boxes[key] = cb
            tl.addWidget(cb)
        self.model = QComboBox()
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.1, 24 * 60)
        self.budget.setDecimals(1)
        self.budget.setValue(30.0)
        self.budget.setSuffix(" min")
        self.device = QComboBox()
        self.device.addItem("Automatic (GPU if present)", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem("GPU (CUDA)", "cuda")
        self.name = QLineEdit()
        self.name.setPlaceholderText("automatic (e.g. endofm_tiny-finetune-20260101-120000)")
        self.activate = QCheckBox("Make the new version the active model when it is done")
        form = QFormLayout()
        form.addRow("Starting model", self.model)
        form.addRow("Time budget", self.budget)
        form.addRow("Device", self.device)
        form.addRow("Name", self.name)
        form.addRow("", self.activate)

        self.summary = QLabel("Counting reviewed labels…")
        self.summary.setObjectName("finetuneSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.warnings = QLabel()
        self.warnings.setObjectName("finetuneWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color:#ffb74d;")
        notice = QLabel(RESEARCH_NOTICE)
        notice.setWordWrap(True)
        notice.setStyleSheet("color:#999;")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.btn_start = self.buttons.addButton("Start fine-tuning", QDialogButtonBox.ButtonRole.AcceptRole)
        self.btn_start.setEnabled(False)
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)

        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Videos</b> (reviewed videos are ticked)"))
        left.addWidget(self.videos, 1)
        left.addWidget(tasks_box)
        left.addLayout(form)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>What will happen</b>"))
        right.addWidget(self.summary)
        right.addWidget(self.warnings)
        right.addStretch(1)
        right.addWidget(notice)
        body = QHBoxLayout()
        body.addLayout(left, 3)
        body.addLayout(right, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(body, 1)
        lay.addWidget(self.buttons)
        fit_dialog(self, 900, 560)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.refresh_plan)
        self.videos.itemChanged.connect(self._changed)
        for w in (self.model, self.device):
            w.currentIndexChanged.connect(self._changed)
        self.budget.valueChanged.connect(self._changed)
        self.load()

    # ---- loading ----------------------------------------------------------------------------------------
    def load(self) -> None:
        def work() -> tuple[list, list, str]:
            from endoreview.services.app_settings import load_settings
            from endoreview.services.finetune_plan import candidate_videos

            store = self._store_fn()
            return candidate_videos(store), store.list_model_versions(), load_settings().device

        self.runner.submit("finetune choices", work, on_done=self._fill, on_error=self._failed)

    def _fill(self, data: tuple[list, list, str]) -> None:
        videos, versions, device = data
        self._loading = True
        self.device.setCurrentIndex(max(0, self.device.findData(device)))  # the Settings choice
        self.videos.clear()
        for v in videos:
            it = QListWidgetItem(f"{v.name}  —  {v.labels} reviewed label{'s' if v.labels != 1 else ''}")
            it.setData(Qt.ItemDataRole.UserRole, v.video_id)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if v.reviewed else Qt.CheckState.Unchecked)
            if not v.reviewed:
                it.setToolTip("Not marked reviewed: only its accepted/edited/drawn labels would be used.")
            self.videos.addItem(it)
        self.model.clear()
        for mv in reversed(versions):
            self.model.addItem(f"{mv.name}{'  (active)' if mv.is_active else ''}", mv.id)
            if mv.is_active:
                self.model.setCurrentIndex(self.model.count() - 1)
        if not versions:
            self.model.addItem("no model registered", None)
        self._loading = False
        self.refresh_plan()

    def _failed(self, exc: BaseException) -> None:
        self.summary.setText(
            f"<span style='color:#ef5350'>Cannot plan the fine-tune: {html.escape(str(exc))}</span>"
        )

    # ---- choices ----------------------------------------------------------------------------------------
    def selected_videos(self) -> list[int]:
        out = []
        for i in range(self.videos.count()):
            it = self.videos.item(i)
            if it.checkState() == Qt.CheckState.Checked:
                out.append(int(it.data(Qt.ItemDataRole.UserRole)))
        return out

    def set_videos(self, ids: list[int]) -> None:
        for i in range(self.videos.count()):
            it = self.videos.item(i)
            on = int(it.data(Qt.ItemDataRole.UserRole)) in ids
            it.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def selected_tasks(self) -> list[str]:
        return [k for k, cb in self.task_boxes.items() if cb.isChecked()]

    def _changed(self, *_a: Any) -> None:
        if not self._loading:
            self.btn_start.setEnabled(False)
            self._timer.start()

    def refresh_plan(self) -> None:
        ids, tasks = self.selected_videos(), self.selected_tasks()
        parent, budget, device = self.model.currentData(), self.budget.value(), self.device.currentData()
        overrides = tuple(self.overrides)

        def work() -> Any:
            from endoreview.services.finetune_plan import plan_finetune

            return plan_finetune(
                self._store_fn(),
                ids,
                tasks=tasks,
                budget_min=budget,
                device=device,
                parent_version=parent,
                overrides=overrides,
            )

        self.runner.submit("finetune plan", work, on_done=self._render, on_error=self._failed)

    def _render(self, plan: Any) -> None:
        from endoreview.services.finetune_plan import format_duration  # noqa: F401 - Qt-free, no torch

        self.plan = plan
        rows = "".join(
            f"<tr><td>{html.escape(label_name(k))}</td><td align='right'>&nbsp;{n}</td></tr>"
            for k, n in plan.label_counts.items()
        )
        counts = (
            f"<table><tr><th align='left'>Reviewed labels per class</th><th></th></tr>{rows}</table>"
            if rows
            else "<i>No reviewed labels in the selected videos.</i>"
        )
        lines = "".join(f"<li>{html.escape(s)}</li>" for s in plan.summary_lines())
        self.summary.setText(f"<ul style='margin-left:-20px'>{lines}</ul>{counts}")
        self.warnings.setText("".join(f"⚠ {html.escape(w)}<br>" for w in plan.warnings))
        blocking = not plan.ok or not any(plan.label_counts.values())
        self.btn_start.setEnabled(not blocking)
        self.planned.emit(plan)

    def _start(self) -> None:
        if self.plan is None or not self.btn_start.isEnabled():
            return
        self.startRequested.emit(self.plan, self.name.text().strip(), self.activate.isChecked())
        self.accept()
