"""Live view of a running fine-tune: loss and validation-metric curves (pyqtgraph), progress, ETA and Cancel.

It renders the job's JSON events (:mod:`endoreview.jobs.finetune` relays the engine's ``progress`` lines with
``loss``/``epoch``/``eta_s`` and the end of each epoch with its ``val`` metrics) and holds nothing else.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from endoreview import RESEARCH_NOTICE
from endoreview.services.finetune_plan import format_duration
from endoreview.services.records import JobState
from endoreview.ui.app import import_pyqtgraph
from endoreview.ui.scale import fit_dialog

log = logging.getLogger(__name__)

PREFERRED = ("f1", "dice_frame_strict", "dice_seq", "auc", "accuracy", "map50", "ap50")
COLORS = ("#00e5ff", "#ffb74d", "#81c784", "#f06292", "#ba68c8")


def pick_metrics(val: dict[str, Any], limit: int = 4) -> list[str]:
    """The validation metrics worth a curve: each task's headline figures first."""
    keys = [
        k
        for k, v in val.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and not k.rsplit("/", 1)[-1].startswith("n_")  # counts (n_sequences, n_frames) are not scores
        and not k.endswith("/threshold")  # the operating point's threshold is a setting, not a score
        and 0.0 <= float(v) <= 1.0
    ]
    ranked = sorted(keys, key=lambda k: (next((i for i, p in enumerate(PREFERRED) if k.endswith(p)), 99), k))
    return ranked[:limit]


class FinetuneMonitor(QWidget):
    """``on_event(ev)`` for each job event; ``cancelRequested`` when the user clicks Cancel."""

    cancelRequested = Signal()
    openRegistry = Signal(int)  # the new model version's id

    def __init__(self, title: str, epochs: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg = import_pyqtgraph()
        self.setObjectName("finetuneMonitor")
        self.setWindowTitle(title)
        self.epochs = max(1, int(epochs))
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.val: dict[str, tuple[list[float], list[float]]] = {}
        self.state = "running"
        self.result: dict[str, Any] = {}
        self.events = 0
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.25)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#00e5ff", width=2))
        self.metric_plot = pg.PlotWidget(title="Held-out metrics (validation videos)")
        self.metric_plot.setLabel("bottom", "epoch")
        self.metric_plot.setYRange(-0.05, 1.65, padding=0)  # the legend sits above 1.0, clear of the curves
        self.metric_plot.getAxis("left").setTicks([[(v / 5, f"{v / 5:.1f}") for v in range(6)]])
        self.metric_plot.showGrid(x=True, y=True, alpha=0.25)
        self.metric_plot.addLegend(offset=(10, 10))
        self.metric_curves: dict[str, Any] = {}
        self._pg = pg
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.status = QLabel("Starting…")
        self.status.setWordWrap(True)
        self.eta = QLabel("ETA –")
        self.btn_cancel = QPushButton("Cancel fine-tuning")
        self.btn_cancel.clicked.connect(self._cancel)
        self.btn_open = QPushButton("Show in Models…")
        self.btn_open.setVisible(False)
        self.btn_open.clicked.connect(
            lambda: self.openRegistry.emit(int(self.result.get("model_version_id", 0)))
        )
        notice = QLabel(RESEARCH_NOTICE)
        notice.setStyleSheet("color:#999;")
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.metric_plot, 1)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.eta)
        row.addWidget(self.btn_cancel)
        row.addWidget(self.btn_open)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addLayout(plots, 1)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(notice)
        fit_dialog(self, 980, 460)

    def _cancel(self) -> None:
        self.btn_cancel.setEnabled(False)
        self.status.setText("Cancelling… (the last finished epoch is kept; resume it from the Jobs panel)")
        self.cancelRequested.emit()

    def _x(self, fraction: float) -> float:
        # the job passes on the fine-tuning engine's own run fraction
        return max(0.0, fraction) * self.epochs

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        self.events += 1
        if kind == "progress":
            frac = float(ev.get("fraction") or 0.0)
            self.bar.setValue(int(1000 * frac))
            if ev.get("message"):
                self.status.setText(html.escape(str(ev["message"])))
            if ev.get("eta_s") is not None:
                self.eta.setText(f"ETA {format_duration(float(ev['eta_s']))}")
            if ev.get("loss") is not None:
                self.loss_x.append(self._x(frac))
                self.loss_y.append(float(ev["loss"]))
                self.loss_curve.setData(self.loss_x, self.loss_y)
            val = ev.get("val")
            if isinstance(val, dict) and ev.get("epoch") is not None:
                self._add_val(int(ev["epoch"]) + 1, val)
            if ev.get("warning"):
                self.status.setText(f"<span style='color:#ffb74d'>⚠ {html.escape(str(ev['warning']))}</span>")
        elif kind == "error":
            self.status.setText(f"<span style='color:#ef5350'>{html.escape(str(ev.get('message')))}</span>")
        elif kind == "done":
            self.finish(str(ev.get("state", "")), ev.get("result") or {}, str(ev.get("message") or ""))

    def _add_val(self, epoch: int, val: dict[str, Any]) -> None:
        for k in pick_metrics(val):
            xs, ys = self.val.setdefault(k, ([], []))
            xs.append(float(epoch))
            ys.append(float(val[k]))
            if k not in self.metric_curves:
                color = COLORS[len(self.metric_curves) % len(COLORS)]
                self.metric_curves[k] = self.metric_plot.plot(
                    [],
                    [],
                    pen=self._pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=6,
                    symbolBrush=color,
                    name=k,
                )
            self.metric_curves[k].setData(xs, ys)

    def finish(self, state: str, result: dict[str, Any], message: str = "") -> None:
        self.state = state or JobState.FAILED
        self.result = dict(result)
        self.btn_cancel.setEnabled(False)
        self.eta.setText("")
        if self.state == JobState.SUCCEEDED:
            self.bar.setValue(1000)
            metrics = (result.get("metrics") or {}).get("val") or {}
            shown = ", ".join(f"{k} {float(metrics[k]):.3f}" for k in pick_metrics(metrics, 3))
            self.status.setText(
                f"<b>Done.</b> Registered <b>{html.escape(str(result.get('name', '')))}</b>"
                + (f" — held-out {html.escape(shown)}" if shown else "")
            )
            self.btn_open.setVisible(True)
        elif self.state == JobState.CANCELLED:
            self.status.setText("Cancelled. The last finished epoch is kept: resume it from the Jobs panel.")
        else:
            self.status.setText(
                f"<span style='color:#ef5350'><b>Failed:</b> {html.escape(message or 'see the job log')}</span>"
                " — nothing was registered; resume it from the Jobs panel."
            )
