"""Test helpers for GUI tests: indexed test videos and real mouse drags.

qtbot's ``mouseMove`` does not carry the held button, so a "drag" made of ``mousePress`` + ``mouseMove`` +
``mouseRelease`` arrives at widgets as a hover with no button down. :func:`drag` sends the three events itself with
``buttons`` set on every move, which is what a real mouse does (and what pyqtgraph's drag handling needs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget

BITS = 12
BLOCK = 16


def open_window(qtbot, db: Path, reviewer: str = "tester", cache_mb: int = 64):
    """The app's main window on the database file ``db``, built as the app builds it (:func:`compose`), shown and
    started; returns once its library is listed."""
    from endoreview.ui.app import apply_theme, compose, ensure_app
    from endoreview.ui.main_window import MainWindow

    apply_theme(ensure_app())
    win = MainWindow(compose(str(db), reviewer, cache_bytes=cache_mb * 1024 * 1024))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.library_ctl.ready, timeout=15000)
    return win


def indexed_frame(i: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A frame whose top row of 16×16 blocks spells ``i`` in binary (white = 1), on a pink-ish background."""
    f = np.zeros((height, width, 3), np.uint8)
    f[...] = (190, 90, 90)
    f[BLOCK * 2 :, :, 1] = (np.arange(width) * 255 // width).astype(np.uint8)[None, :]
    for b in range(BITS):
        x = b * BLOCK
        f[:BLOCK, x : x + BLOCK] = 255 if (i >> b) & 1 else 0
    return f


def read_index(frame: np.ndarray, width: int | None = None) -> int:
    """Inverse of :func:`indexed_frame`, also for a frame scaled to ``frame.shape[1]`` pixels wide."""
    h, w = frame.shape[:2]
    scale = w / (width or w)
    value = 0
    for b in range(BITS):
        x0, x1 = int((b * BLOCK + 4) * scale), int(((b + 1) * BLOCK - 4) * scale)
        y0, y1 = int(4 * scale), int((BLOCK - 4) * scale)
        if frame[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean() > 128:
            value |= 1 << b
    return value


def make_indexed_video(
    path: Path, n: int = 90, width: int = 320, height: int = 240, fps: float = 30.0, gop: int = 30
) -> Path:
    from core_model.video import write_video

    return write_video(path, (indexed_frame(i, width, height) for i in range(n)), fps=fps, gop=gop, crf=18)


def _send(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPointF,
    button: Qt.MouseButton,
    buttons: Qt.MouseButton,
    modifiers=Qt.KeyboardModifier.NoModifier,
) -> None:
    glob = QPointF(widget.mapToGlobal(pos.toPoint()))
    ev = QMouseEvent(kind, pos, glob, button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def drag(
    widget: QWidget,
    points: Sequence[QPoint | QPointF | tuple[float, float]],
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
    modifiers=Qt.KeyboardModifier.NoModifier,
    steps_between: int = 3,
    interval_ms: int = 20,
) -> None:
    """Press at ``points[0]``, move through the rest with ``button`` held (buttons state set), release at the last.

    ``steps_between`` intermediate moves per segment, ``interval_ms`` apart (like a real mouse)."""
    pts = [QPointF(*p) if isinstance(p, tuple) else QPointF(p) for p in points]
    if len(pts) < 2:
        raise ValueError("a drag needs at least two points")
    target = widget.viewport() if hasattr(widget, "viewport") else widget
    _send(target, QEvent.Type.MouseButtonPress, pts[0], button, button, modifiers)
    for a, b in zip(pts, pts[1:]):
        for k in range(1, steps_between + 1):
            p = a + (b - a) * (k / steps_between)
            time.sleep(interval_ms / 1000)  # real mice report at ~50-100 Hz; pyqtgraph rate-limits moves
            _send(target, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button, modifiers)
            QApplication.processEvents()
    _send(target, QEvent.Type.MouseButtonRelease, pts[-1], button, Qt.MouseButton.NoButton, modifiers)
    QApplication.processEvents()


def click(
    widget: QWidget,
    point: QPoint | QPointF | tuple[float, float],
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
) -> None:
    p = QPointF(*point) if isinstance(point, tuple) else QPointF(point)
    target = widget.viewport() if hasattr(widget, "viewport") else widget
    _send(target, QEvent.Type.MouseButtonPress, p, button, button)
    _send(target, QEvent.Type.MouseButtonRelease, p, button, Qt.MouseButton.NoButton)
    QApplication.processEvents()


# ---- the correction tools (tests of endoreview.ui.editing)
def _in_thread(fn, *args, **kwargs):  # the test's own store reads, off the GUI thread
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args, **kwargs)))
    t.start()
    t.join()
    return out[0]


def at(ctl, x: float, y: float) -> QPointF:
    """Widget (viewport) position of image pixel (x, y)."""
    v = ctl.player_widget.view
    return QPointF(v.mapFromScene(v.vb.mapViewToScene(QPointF(x, y))))


def key(qtbot, ctl, k, mod=Qt.KeyboardModifier.NoModifier) -> None:
    ctl.player_widget.view.setFocus()
    qtbot.keyClick(ctl.player_widget.view, k, mod)


def saved(qtbot, ctl) -> None:
    qtbot.waitUntil(lambda: ctl.writer.busy == 0, timeout=15000)


def labels(ctl, frame: int, kind: str | None = None) -> list:
    out = _in_thread(ctl.parent().backend.store.labels_for_frame, ctl.video.id, frame)
    return [x for x in out if kind is None or x.kind == kind]


def draw_one(qtbot, ctl, tool_key, points: list[tuple[float, float]], kind: str):
    """Pick a tool by its key, drag it through ``points`` (frame pixels) on frame 0 and return the one ``kind``
    label it saved."""
    key(qtbot, ctl, tool_key)
    drag(ctl.player_widget.view, [at(ctl, x, y) for x, y in points])
    saved(qtbot, ctl)
    (made,) = labels(ctl, 0, kind)
    return made
