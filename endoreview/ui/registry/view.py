"""The model registry view: every version with its parent, data snapshot, hyper-parameters, held-out metrics and
date; activate, roll back, delete (with confirmation), compare, and import an official Endo-FM checkpoint.

Every action is a :class:`endoreview.services.registry.RegistryService` call on a worker thread; the view renders
the list it gets back and says plainly what went wrong. Every model shows the research-use notice.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from endoreview import RESEARCH_NOTICE
from endoreview.ui.scale import fit_dialog
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

COLUMNS = ("Active", "Name", "Parent", "Created", "Trained on", "Held-out", "Architecture")
HEADLINES = ("classification/f1", "segmentation/dice_frame_strict", "detection/f1", "segmentation/dice_seq")


def headline(metrics: dict[str, Any]) -> str:
    """Short held-out figures of a version (validation, else test)."""
    for split in ("test", "val"):
        m = metrics.get(split) or {}
        parts = [f"{k.split('/')[0][:3]} {k.split('/')[1]} {float(m[k]):.3f}" for k in HEADLINES if k in m]
        if parts:
            return f"{split}: " + ", ".join(parts[:2])
    return "–"


def trained_on(snapshot: dict[str, Any]) -> str:
    if snapshot.get("video_ids"):
        counts = snapshot.get("label_counts") or {}
        # {task: {class: n}} (a training manifest's counts) or {kind: n}
        total = sum(
            sum(int(x) for x in v.values()) if isinstance(v, dict) else int(v)
            for v in counts.values()
            if isinstance(v, dict | int | float)
        )
        return f"{len(snapshot['video_ids'])} videos" + (f", {total} labels" if total else "")
    if snapshot.get("source_file"):
        return "imported checkpoint"
    return "–"


def describe(mv: Any, names: dict[int, str]) -> str:
    """The details pane of one version (HTML)."""

    def block(title: str, obj: Any) -> str:
        text = json.dumps(obj, indent=1, default=str, sort_keys=True) if obj else "–"
        return f"<h4>{title}</h4><pre>{html.escape(text[:6000])}</pre>"

    parent = names.get(mv.parent_id, f"version {mv.parent_id}") if mv.parent_id else "none (a starting point)"
    head = (
        f"<h3>{html.escape(mv.name)}{' — active' if mv.is_active else ''}</h3>"
        f"<p style='color:#ffb74d'>{html.escape(RESEARCH_NOTICE)}</p>"
        f"<p>Version {mv.id} · {html.escape(mv.architecture)} · created {mv.created_at:%Y-%m-%d %H:%M}<br>"
        f"Parent: {html.escape(str(parent))}<br>Files: {html.escape(mv.files_dir)}<br>"
        f"{html.escape(mv.notes or '')}</p>"
    )
    return (
        head
        + metrics_table(mv.metrics)
        + snapshot_html(mv.data_snapshot)
        + block("Hyper-parameters", mv.hyperparameters)
    )


def metrics_table(metrics: dict[str, Any]) -> str:
    """Held-out metrics as a table: one row per metric, one column per split (validation, test)."""
    splits = [s for s in ("val", "test") if isinstance(metrics.get(s), dict) and metrics[s]]
    if not splits:
        return "<h4>Held-out metrics</h4><p>none recorded (imported or not evaluated yet)</p>"
    names = sorted({k for s in splits for k in metrics[s]})
    head = "".join(f"<th align='right'>&nbsp;{'validation' if s == 'val' else 'test'}</th>" for s in splits)
    rows = ""
    for k in names:
        cells = ""
        for s in splits:
            v = metrics[s].get(k)
            count = k.rsplit("/", 1)[-1].startswith("n_")
            text = (
                "–" if not isinstance(v, int | float) else f"{float(v):.0f}" if count else f"{float(v):.3f}"
            )
            cells += f"<td align='right'>&nbsp;{text}</td>"
        rows += f"<tr><td>{html.escape(k)}</td>{cells}</tr>"
    evals = metrics.get("evaluations") or []
    more = f"<p>{len(evals)} later comparison(s) recorded.</p>" if evals else ""
    return f"<h4>Held-out metrics</h4><table><tr><th align='left'>metric</th>{head}</tr>{rows}</table>{more}"


def snapshot_html(snap: dict[str, Any]) -> str:
    if not snap:
        return "<h4>Data snapshot</h4><p>–</p>"
    lines = []
    if snap.get("video_ids"):
        lines.append(f"Videos: {', '.join(str(v) for v in snap['video_ids'])}")
    for split, vids in (snap.get("splits") or {}).items():
        if vids:
            lines.append(f"{split}: {', '.join(str(v) for v in vids)}")
    if snap.get("label_counts"):
        lines.append("Labels: " + json.dumps(snap["label_counts"], default=str)[:400])
    for key in ("manifest", "source_file", "resumed_from_job"):
        if snap.get(key) is not None:
            lines.append(f"{key.replace('_', ' ')}: {snap[key]}")
    return "<h4>Data snapshot</h4><p>" + "<br>".join(html.escape(x) for x in lines) + "</p>"


class RegistryView(QDialog):
    """``compareRequested(a_id, b_id)`` when the user asks for a comparison; ``changed`` after any change."""

    compareRequested = Signal(int, int)
    changed = Signal()
    message = Signal(str)

    def __init__(self, store_fn: Any, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("registryView")
        self._store_fn, self.runner = store_fn, runner
        self.versions: list[Any] = []
        self.confirm = self._confirm  # replaced in tests
        self.ask_file = self._ask_file  # replaced in tests
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.details = QTextBrowser()
        self.details.setObjectName("registryDetails")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.btn_activate = QPushButton("Make active")
        self.btn_rollback = QPushButton("Roll back to parent")
        self.btn_delete = QPushButton("Delete…")
        self.btn_compare_parent = QPushButton("Compare with parent")
        self.btn_compare = QPushButton("Compare two…")
        self.btn_compare.setToolTip("Select two versions (Ctrl+click) and compare them on held-out videos")
        self.btn_import = QPushButton("Import Endo-FM checkpoint…")
        self.btn_activate.clicked.connect(self.activate_selected)
        self.btn_rollback.clicked.connect(self.rollback)
        self.btn_delete.clicked.connect(self.delete_selected)
        self.btn_compare_parent.clicked.connect(self.compare_with_parent)
        self.btn_compare.clicked.connect(self.compare_selected)
        self.btn_import.clicked.connect(self.import_checkpoint)
        buttons = QHBoxLayout()
        for b in (
            self.btn_activate,
            self.btn_rollback,
            self.btn_delete,
            self.btn_compare_parent,
            self.btn_compare,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.btn_import)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setSizes([260, 320])
        notice = QLabel(RESEARCH_NOTICE)
        notice.setStyleSheet("color:#ffb74d;")
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(notice)
        fit_dialog(self, 1000, 640)
        self._selected()
        self.refresh()

    # ---- data ------------------------------------------------------------------------------------------
    def _registry(self) -> Any:
        from endoreview.services.registry import RegistryService

        return RegistryService(self._store_fn())

    def refresh(self, select: int | None = None) -> None:
        self.runner.submit(
            "model versions", lambda: self._registry().list(), on_done=lambda v: self._render(v, select)
        )

    def _render(self, versions: list[Any], select: int | None = None) -> None:
        keep = select if select is not None else (self.selected()[0].id if self.selected() else None)
        self.versions = list(reversed(versions))  # newest first
        names = {mv.id: mv.name for mv in versions}
        self.table.setRowCount(len(self.versions))
        for row, mv in enumerate(self.versions):
            cells = (
                "●" if mv.is_active else "",
                mv.name,
                names.get(mv.parent_id, "") if mv.parent_id else "",
                f"{mv.created_at:%Y-%m-%d %H:%M}",
                trained_on(mv.data_snapshot),
                headline(mv.metrics),
                mv.architecture,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setToolTip("active model" if mv.is_active else "")
                    item.setForeground(Qt.GlobalColor.green)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        if self.versions:
            self._select_row(next((i for i, mv in enumerate(self.versions) if mv.id == keep), 0))
        if not versions:
            self.details.setHtml(
                "<p>No model registered yet. Import an official Endo-FM checkpoint, or fine-tune from "
                "reviewed videos.</p>"
            )
        self._selected()

    def selected(self) -> list[Any]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.versions[r] for r in rows if r < len(self.versions)]

    def _selected(self) -> None:
        sel = self.selected()
        one = sel[0] if len(sel) == 1 else None
        self.btn_activate.setEnabled(one is not None and not one.is_active)
        self.btn_delete.setEnabled(one is not None and not one.is_active)
        self.btn_compare_parent.setEnabled(one is not None and one.parent_id is not None)
        self.btn_compare.setEnabled(len(sel) == 2)
        active = next((mv for mv in self.versions if mv.is_active), None)
        self.btn_rollback.setEnabled(active is not None and active.parent_id is not None)
        if one is not None:
            self.details.setHtml(describe(one, {mv.id: mv.name for mv in self.versions}))

    def select_id(self, version_id: int) -> None:
        for row, mv in enumerate(self.versions):
            if mv.id == version_id:
                self._select_row(row)

    def _select_row(self, row: int) -> None:
        # QTableView.selectRow reads the keyboard modifiers held at that moment: a refresh arriving while the
        # user holds Ctrl (or Shift) would toggle (or extend) instead of selecting one version.
        model, sel = self.table.model(), self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag
        first = model.index(row, 0)
        sel.setCurrentIndex(first, flags.NoUpdate)
        sel.select(QItemSelection(first, model.index(row, model.columnCount() - 1)), flags.ClearAndSelect)

    # ---- actions ---------------------------------------------------------------------------------------
    def _do(self, what: str, fn: Any, done_text: Any) -> None:
        def ok(result: Any) -> None:
            text = done_text(result)
            self.status.setText(text)
            self.message.emit(text)
            self.changed.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.status.setText(
                f"<span style='color:#ef5350'>{html.escape(what)} failed: {html.escape(str(exc))}</span>"
            )
            self.refresh()

        self.runner.submit(what, fn, on_done=ok, on_error=failed)

    def activate_selected(self) -> None:
        sel = self.selected()
        if len(sel) == 1:
            vid = sel[0].id
            self._do(
                "Activate", lambda: self._registry().activate(vid), lambda mv: f"Active model: {mv.name}"
            )

    def rollback(self) -> None:
        self._do(
            "Roll back",
            lambda: self._registry().rollback(),
            lambda mv: f"Rolled back; active model: {mv.name}",
        )

    def delete_selected(self) -> None:
        sel = self.selected()
        if len(sel) != 1:
            return
        mv = sel[0]
        if not self.confirm(
            "Delete model version",
            f"Delete {mv.name}? Its files are removed if the registry owns them. Predictions made with it stay "
            "readable. This cannot be undone.",
        ):
            return
        self._do("Delete", lambda: self._registry().delete(mv.id), lambda _r: f"Deleted {mv.name}")

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        )
        return answer == QMessageBox.StandardButton.Yes

    def compare_with_parent(self) -> None:
        sel = self.selected()
        if len(sel) == 1 and sel[0].parent_id is not None:
            self.compareRequested.emit(int(sel[0].parent_id), int(sel[0].id))

    def compare_selected(self) -> None:
        sel = self.selected()
        if len(sel) == 2:
            a, b = sorted(sel, key=lambda mv: mv.id)
            self.compareRequested.emit(a.id, b.id)

    def _ask_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Import an official Endo-FM checkpoint",
            "",
            "Checkpoints (*.pth *.pt *.ckpt *.bin);;All files (*)",
        )
        return path

    def import_checkpoint(self) -> None:
        path = self.ask_file()
        if not path:
            return
        self.status.setText(f"Converting {html.escape(path)}…")
        self._do(
            "Import",
            lambda: self._registry().import_official(path),
            lambda mv: f"Imported {mv.name} ({mv.architecture}). {RESEARCH_NOTICE}",
        )
