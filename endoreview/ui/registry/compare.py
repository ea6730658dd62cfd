"""Two model versions side by side: the metric table and the frames where they disagree on the same held-out
videos (``endoreview models compare`` in a subprocess), and both models' overlays on the same frame
(the ``model-frames`` job). Double-clicking a disagreeing frame opens it in the player."""

from __future__ import annotations

import html
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core_model.contract import rle_decode
from endoreview import RESEARCH_NOTICE
from endoreview.media.opener import read_frame
from endoreview.services.jobs import JobService, Launch
from endoreview.services.records import JobState
from endoreview.ui.app import import_pyqtgraph
from endoreview.ui.jobs_panel import Job
from endoreview.ui.scale import fit_dialog
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

SIDE_COLORS = ((0, 229, 255), (255, 183, 77))  # version A: cyan, version B: amber


def held_out(mv: Any) -> tuple[str, str] | None:
    """(manifest, split) a version was held out on: its data snapshot's validation (or test) videos."""
    snap = mv.data_snapshot or {}
    manifest = snap.get("manifest")
    if not manifest or not Path(manifest).is_file():
        return None
    splits = snap.get("splits") or {}
    for s in ("test", "val"):
        if splits.get(s):
            return manifest, s
    return None


def overlay(frame: np.ndarray, pred: dict[str, Any], color: tuple[int, int, int]) -> np.ndarray:
    """``frame`` with the predicted masks tinted and boxes outlined in ``color``."""
    out = frame.astype(np.float32).copy()
    h, w = out.shape[:2]
    if pred.get("masks"):
        for m in pred["masks"]:
            mk = rle_decode(m["rle"]).astype(bool)
            if mk.shape == (h, w):
                out[mk] = 0.55 * out[mk] + 0.45 * np.array(color, np.float32)
    for b in pred.get("boxes") or []:
        x0, y0, x1, y1 = (int(round(v)) for v in b["bbox"])
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w - 1, x1), min(h - 1, y1)
        if x1 > x0 and y1 > y0:
            out[y0, x0:x1] = out[y1, x0:x1] = color
            out[y0:y1, x0] = out[y0:y1, x1] = color
    return out.clip(0, 255).astype(np.uint8)


def outcome_text(o: Any) -> str:
    """One model's outcome on a frame, in words (the comparison's per-frame record, not its JSON)."""
    if not isinstance(o, dict) or not o:
        return "—"
    parts = []
    if "video_pred" in o:
        v = o["video_pred"]
        parts.append(f"video class #{v}" if isinstance(v, int) else f"video class {v}")
    if "det_hit" in o:
        parts.append("polyp detected" if o.get("det_hit") else "no detection")
    if "mask_pixels" in o:
        px = int(o.get("mask_pixels") or 0)
        parts.append(f"mask {px} px" if px else "no mask")
        if o.get("dice") is not None:
            parts.append(f"Dice {float(o['dice']):.2f}")
    known = {"video_pred", "det_hit", "mask_pixels", "dice"}
    for k, v in o.items():
        if k not in known and isinstance(v, (int, float, str, bool)):
            parts.append(
                f"{k.replace('_', ' ')} {v:.2f}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
            )
    return ", ".join(parts) or "—"


def _fmt(v: Any, metric: str = "") -> str:
    if v is None:
        return "–"
    if metric.rsplit("/", 1)[-1].startswith("n_"):  # a count, not a score
        return f"{float(v):.0f}"
    return f"{float(v):.4f}"


class CompareView(QDialog):
    openFrame = Signal(int, int)  # video id, frame

    def __init__(
        self,
        a: Any,
        b: Any,
        manifest: str,
        split: str,
        runner: TaskRunner,
        launcher: JobService | None = None,
        start_job: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        pg = import_pyqtgraph()
        self.a, self.b, self.manifest, self.split, self.runner = a, b, manifest, split, runner
        self.launcher = launcher if launcher is not None else JobService(None)
        self._start_job = start_job
        self.result: dict[str, Any] | None = None
        self.frame_preds: dict[int, dict[str, Any]] = {}
        self.state = "running"
        self.setWindowTitle(f"Compare {a.name} and {b.name}")
        self.setObjectName("compareView")
        self.title = QLabel(
            f"<b><span style='color:#00e5ff'>A: {html.escape(a.name)}</span> vs "
            f"<span style='color:#ffb74d'>B: {html.escape(b.name)}</span></b> on the held-out ({html.escape(split)}) videos "
            f"of {html.escape(Path(manifest).parent.name)}"
        )
        self.status = QLabel("Evaluating both versions on the same held-out videos…")
        self.status.setWordWrap(True)
        self.metrics = QTableWidget(0, 4)
        self.metrics.setHorizontalHeaderLabels(["Metric", "A", "B", "Change"])
        self.metrics.verticalHeader().setVisible(False)
        self.metrics.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.frames = QTableWidget(0, 5)
        self.frames.setHorizontalHeaderLabels(["Video", "Frame", "Why", "A", "B"])
        self.frames.verticalHeader().setVisible(False)
        self.frames.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.frames.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.frames.setToolTip("Double-click a frame to open it in the player")
        self.frames.itemSelectionChanged.connect(self._show_selected)
        self.frames.cellDoubleClicked.connect(self._open_row)
        self.view_a = pg.ImageView()
        self.view_b = pg.ImageView()
        for v in (self.view_a, self.view_b):
            v.ui.histogram.hide()
            v.ui.roiBtn.hide()
            v.ui.menuBtn.hide()
        self.caption_a = QLabel(f"A: {html.escape(a.name)}")
        self.caption_b = QLabel(f"B: {html.escape(b.name)}")
        self.caption_a.setStyleSheet("color:#00e5ff;")
        self.caption_b.setStyleSheet("color:#ffb74d;")
        sides = QHBoxLayout()
        for cap, view in ((self.caption_a, self.view_a), (self.caption_b, self.view_b)):
            col = QVBoxLayout()
            col.addWidget(cap)
            col.addWidget(view, 1)
            sides.addLayout(col, 1)
        side_w = QWidget()
        side_w.setLayout(sides)
        self.frames_title = QLabel("Frames where they disagree")
        frames_box = QWidget()
        fl = QVBoxLayout(frames_box)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.frames_title)
        fl.addWidget(self.frames, 1)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.metrics)
        top.addWidget(frames_box)
        top.setSizes([420, 560])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(side_w)
        main.setSizes([260, 380])
        notice = QLabel(RESEARCH_NOTICE)
        notice.setStyleSheet("color:#ffb74d;")
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(main, 1)
        lay.addWidget(self.status)
        lay.addWidget(notice)
        fit_dialog(self, 1100, 760)
        self._tmp = tempfile.TemporaryDirectory(prefix="endoreview-compare-")
        self.out_path = Path(self._tmp.name) / "compare.json"

    # ---- the comparison job ----------------------------------------------------------------------------
    def _job(self, launch: Launch, on_event: Any = None) -> Job:
        if self._start_job is not None:
            return self._start_job(launch, on_event)
        job = Job(launch.title, launch.argv, on_event=on_event, env=launch.env, parent=self)
        job.start()
        return job

    def start(self) -> Job:
        launch = self.launcher.launch(
            "compare", f"Compare {self.a.name} with {self.b.name}",
            "--a", str(self.a.id), "--b", str(self.b.id), "--manifest", self.manifest, "--split", self.split,
            "--out", str(self.out_path), "--record",
        )  # fmt: skip
        self.job = self._job(launch)
        self.job.finished.connect(self._compared)
        return self.job

    def _compared(self, entry: Any) -> None:
        if entry.state != JobState.SUCCEEDED or not self.out_path.is_file():
            self.state = "failed"
            self.status.setText(
                f"<span style='color:#ef5350'>The comparison failed: {html.escape(entry.error or entry.message)}</span>"
            )
            return
        self.load(json.loads(self.out_path.read_text(encoding="utf-8")))

    def load(self, result: dict[str, Any]) -> None:
        """Render a comparison (the JSON ``endoreview models compare --out`` writes)."""
        self.result = result
        self.state = "done"
        rows = result.get("metrics") or []
        self.metrics.setRowCount(len(rows))
        for i, r in enumerate(rows):
            d = r.get("delta")
            cells = (
                r["metric"],
                _fmt(r.get("a"), r["metric"]),
                _fmt(r.get("b"), r["metric"]),
                "" if d is None else f"{float(d):+.4f}",
            )
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 3 and d is not None and abs(float(d)) > 1e-9:
                    item.setForeground(Qt.GlobalColor.green if float(d) > 0 else Qt.GlobalColor.red)
                self.metrics.setItem(i, j, item)
        self.metrics.resizeColumnsToContents()
        dis = result.get("disagreements") or []
        self.frames.setRowCount(len(dis))
        for i, d in enumerate(dis):
            frame = int(d["frame"])
            cells = (
                str(d["video"]),
                "whole video" if frame < 0 else str(frame),
                d.get("reason", ""),
                outcome_text(d.get("a")),
                outcome_text(d.get("b")),
            )
            for j, text in enumerate(cells):
                self.frames.setItem(i, j, QTableWidgetItem(text))
        self.frames.resizeColumnsToContents()
        n = result.get("frames_compared")
        self.frames_title.setText(
            f"Frames where they disagree: {len(dis)}"
            + (f" of {n}" if n else "")
            + ("" if dis else " — the two versions agree on every held-out frame")
        )
        self.status.setText(
            f"{len(dis)} frame(s)/video(s) where the two versions disagree. Select one to see both models on it; "
            "double-click to open it in the player."
        )

    # ---- the same frame, both models -------------------------------------------------------------------
    def _video_path(self, video: str) -> Path | None:
        try:
            data = json.loads(Path(self.manifest).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        for v in data.get("videos", []):
            if str(v.get("id")) == str(video):
                p = Path(v["path"])
                return p if p.is_absolute() else Path(self.manifest).parent / p
        return None

    def _show_selected(self) -> None:
        rows = sorted({i.row() for i in self.frames.selectedIndexes()})
        if not rows or self.result is None:
            return
        d = self.result["disagreements"][rows[0]]
        frame = max(0, int(d["frame"]))
        self.show_frame(str(d["video"]), frame)

    def show_frame(self, video: str, frame: int) -> None:
        path = self._video_path(video)
        if path is None:
            self.status.setText(f"Video {html.escape(video)} is not in the held-out manifest any more.")
            return
        self.frame_preds = {}
        self._frame_key = (str(path), frame)
        launch = self.launcher.launch(
            "model-frames", f"Both models on frame {frame}", "--model", self.a.files_dir,
            "--model", self.b.files_dir, "--video", str(path), "--frame", str(frame),
        )  # fmt: skip
        self.status.setText(f"Running both models on frame {frame} of video {html.escape(video)}…")
        job = self._job(launch, on_event=self._frame_event)
        job.finished.connect(lambda _e, key=self._frame_key: self._render_frame(key))

    def _frame_event(self, ev: dict[str, Any]) -> None:
        if ev.get("event") == "frame":
            self.frame_preds[int(ev["model"])] = ev

    def _render_frame(self, key: tuple[str, int]) -> None:
        if key != getattr(self, "_frame_key", None):
            return
        path, frame = key
        preds = dict(self.frame_preds)

        def work() -> tuple[np.ndarray, np.ndarray]:
            img = read_frame(path, frame)
            return overlay(img, preds.get(0, {}), SIDE_COLORS[0]), overlay(
                img, preds.get(1, {}), SIDE_COLORS[1]
            )

        def show(images: tuple[np.ndarray, np.ndarray]) -> None:
            self.images = images
            for view, img in zip((self.view_a, self.view_b), images):
                view.setImage(img, autoLevels=False, levels=(0, 255), autoRange=True)
            for k, cap, mv in ((0, self.caption_a, self.a), (1, self.caption_b, self.b)):
                p = preds.get(k, {})
                top = max((p.get("probs") or {}).items(), key=lambda kv: kv[1], default=None)
                extra = f" · {top[0]} {top[1]:.2f}" if top else ""
                cap.setText(
                    f"{'AB'[k]}: {html.escape(mv.name)} — {len(p.get('masks') or [])} mask(s), "
                    f"{len(p.get('boxes') or [])} box(es){extra}"
                )
            self.status.setText(f"Frame {frame}: both models' output overlaid (A cyan, B amber).")

        self.runner.submit(
            "compare frame", work, on_done=show, on_error=lambda e: self.status.setText(str(e))
        )

    def _open_row(self, row: int, _col: int) -> None:
        if self.result is None:
            return
        d = self.result["disagreements"][row]
        video = str(d["video"])
        if video.isdigit():
            self.openFrame.emit(int(video), max(0, int(d["frame"])))
        else:
            self.status.setText(f"Video {html.escape(video)} is not in the library (held-out file only).")

    def closeEvent(self, ev: Any) -> None:  # noqa: N802
        self._tmp.cleanup()
        super().closeEvent(ev)
