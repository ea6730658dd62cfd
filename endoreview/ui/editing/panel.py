"""Widgets of the correction tools: the tool bar (left of the player) and the review-queue dock.

They hold no domain state: they show the :class:`EditController`'s state and call it when clicked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from endoreview.services.editing import REJECT_REASONS
from endoreview.ui.editing.canvas import Tool

if TYPE_CHECKING:
    from endoreview.ui.editing.controller import EditController

TOOLS = (
    (Tool.NAVIGATE, "Navigate", "V", "Pan and zoom; A / R / E act on the suggestion under the mouse"),
    (Tool.BRUSH, "Brush", "W", "Paint the mask ([ and ] change the size); each stroke is one undo step"),
    (Tool.ERASER, "Eraser", "X", "Erase from the mask"),
    (Tool.POLYGON, "Polygon", "P", "Click points; click the first point, double-click or Enter fills"),
    (Tool.BOX, "Box", "T", "Drag to draw a box; drag a box to move it, a corner to resize it"),
)
STATUS = (("unreviewed", "Unreviewed"), ("in_review", "In review"), ("reviewed", "Reviewed"))


def reason_menu(ctl: EditController, parent: QWidget | None = None) -> QMenu:
    """The short list of reject reasons (Shift+R), shown at the mouse."""
    menu = QMenu("Reject because…", parent)
    for r in REJECT_REASONS:
        menu.addAction(r, lambda r=r: ctl.reject(r))
    return menu


class EditToolbar(QToolBar):
    def __init__(self, ctl: EditController, parent: QWidget | None = None) -> None:
        super().__init__("Correction tools", parent)
        self.setObjectName("editToolbar")
        self.ctl = ctl
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.setMovable(False)
        self.group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        self.addWidget(self._caption("Tools"))
        for tool, text, key, tip in TOOLS:
            a = QAction(f"{text} ({key})", self)
            a.setCheckable(True)
            a.setToolTip(tip)
            a.triggered.connect(lambda _c=False, t=tool: ctl.set_tool(t))
            self.group.addAction(a)
            self.addAction(a)
            self.tool_actions[tool] = a
        self.addSeparator()
        self.addWidget(self._caption("Class (1–9)"))
        self.cls = QComboBox()
        self.cls.setToolTip("Class for new masks, boxes and segments (keys 1–9)")
        self.cls.activated.connect(lambda k: ctl.class_key(k))
        self.addWidget(self.cls)
        self.addWidget(self._caption("Brush [ ]"))
        self.brush = QLabel()
        self.addWidget(self.brush)
        self.addWidget(self._caption("Grow/shrink px"))
        self.grow = QSpinBox()
        self.grow.setRange(1, 50)
        self.grow.setValue(ctl.grow_px)
        self.grow.valueChanged.connect(lambda v: setattr(ctl, "grow_px", int(v)))
        self.addWidget(self.grow)
        for text, tip, slot in (
            ("Fill holes (H)", "Fill the holes of this frame's mask", ctl.fill_holes),
            ("Grow (G)", "Grow this frame's mask", lambda: ctl.grow(ctl.grow_px)),
            ("Shrink (⇧G)", "Shrink this frame's mask", lambda: ctl.grow(-ctl.grow_px)),
            ("◀ Copy (C)", "Copy the mask of the previous frame", lambda: ctl.copy_from(-1)),
            ("Copy ▶ (⇧C)", "Copy the mask of the next frame", lambda: ctl.copy_from(1)),
            (
                "Propagate ▶ (Ctrl+→)",
                "Carry this mask forward to the next keyframe",
                lambda: ctl.propagate(True),
            ),
            (
                "◀ Propagate (Ctrl+←)",
                "Carry this mask backward to the previous keyframe",
                lambda: ctl.propagate(False),
            ),
            ("Interpolate (⇧T)", "Fill the selected box's track between keyframes", ctl.interpolate_track),
        ):
            self._button(text, tip, slot)
        self.addSeparator()
        self.addWidget(self._caption("Review"))
        self._button("Accept (A)", "Accept the suggestion under the mouse / on this frame", ctl.accept)
        self._button("Reject (R)", "Reject it (Shift+R: with a reason)", lambda: ctl.reject())
        self._button("Edit (E)", "Edit it (keeps the link to the model)", ctl.edit)
        self.addWidget(self._caption("Bulk accept ≥"))
        self.thr = QDoubleSpinBox()
        self.thr.setRange(0.0, 1.0)
        self.thr.setSingleStep(0.05)
        self.thr.setValue(ctl.bulk_threshold)
        self.thr.valueChanged.connect(lambda v: setattr(ctl, "bulk_threshold", float(v)))
        self.addWidget(self.thr)
        self._button(
            "Bulk accept (⇧A)", "Accept every suggestion between In and Out above the score", ctl.bulk_accept
        )
        self.addSeparator()
        self.addWidget(self._caption("Video class"))
        self.vclass = QComboBox()
        self.vclass.activated.connect(
            lambda k: ctl.set_video_class(self.vclass.itemText(k)) if k > 0 else None
        )
        self.addWidget(self.vclass)
        self.addWidget(self._caption("Review status"))
        self.status = QComboBox()
        for key, text in STATUS:
            self.status.addItem(text, key)
        self.status.activated.connect(lambda k: ctl.set_review_status(self.status.itemData(k)))
        self.addWidget(self.status)
        self.blind = QAction("Blind first pass", self)
        self.blind.setCheckable(True)
        self.blind.setToolTip(
            "Hide the model's output until you have labelled; unchecking reveals and compares"
        )
        self.blind.toggled.connect(ctl.set_blind)
        self.addAction(self.blind)
        self.addSeparator()
        self.undo_btn = self._button("Undo (Ctrl+Z)", "Undo the last edit", ctl.undo)
        self.redo_btn = self._button("Redo (Ctrl+Shift+Z)", "Redo", ctl.redo)
        self.marks = QLabel()
        self.marks.setWordWrap(True)
        self.addWidget(self.marks)
        ctl.stateChanged.connect(self.sync)
        self.sync()

    def _caption(self, text: str) -> QLabel:
        lab = QLabel(text)
        lab.setStyleSheet("color:#9e9eb0; font-size: 9pt; padding-top: 6px;")
        return lab

    def _button(self, text: str, tip: str, slot) -> QPushButton:  # noqa: ANN001
        b = QPushButton(text)
        b.setToolTip(tip)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(slot)
        self.addWidget(b)
        return b

    def sync(self) -> None:
        c = self.ctl
        self.tool_actions[c.tools.tool].setChecked(True)
        if [self.cls.itemText(k).split(" ", 1)[-1] for k in range(self.cls.count())] != list(c.classes):
            self.cls.clear()
            for k, name in enumerate(c.classes[:9]):
                self.cls.addItem(f"{k + 1} {name}")
        if c.current_class in c.classes:
            self.cls.setCurrentIndex(c.classes.index(c.current_class))
        if self.vclass.count() != len(c.video_classes) + 1:
            self.vclass.clear()
            self.vclass.addItem("— set —")
            self.vclass.addItems(list(c.video_classes))
        self.brush.setText(f"{c.brush_radius:g} px")
        k = self.status.findData(c.review_status)
        if k >= 0:
            self.status.setCurrentIndex(k)
        self.blind.blockSignals(True)
        self.blind.setChecked(c.blind)
        self.blind.blockSignals(False)
        self.undo_btn.setEnabled(c.can_undo)
        self.redo_btn.setEnabled(c.can_redo)
        mi = "—" if c.mark_in is None else str(c.mark_in + 1)
        mo = "—" if c.mark_out is None else str(c.mark_out)
        self.marks.setText(f"In {mi} · Out {mo}")


class QueuePanel(QWidget):
    """The review queue: uncertain regions, most uncertain first; double-click or N goes to an item."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.refresh_btn = QPushButton("Rebuild queue")
        self.hint = QLabel(
            "Regions where the model is unsure (entropy, low margin, flicker, task disagreement). N: next."
        )
        self.hint.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.hint)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.refresh_btn)

    def show_items(self, items: list, names: dict[int, str], position: int) -> None:
        self.list.clear()
        for k, it in enumerate(items):
            row = QListWidgetItem(
                f"{names.get(it.video_id, it.video_id)} · frames {it.start + 1}–{it.end} · {it.score:.2f} ({it.reason})"
            )
            row.setData(Qt.ItemDataRole.UserRole, k)
            self.list.addItem(row)
        if 0 <= position < self.list.count():
            self.list.setCurrentRow(position)
        if not items:
            self.list.addItem("Nothing uncertain left in unreviewed videos.")


def popup_reasons(ctl: EditController, parent: QWidget) -> None:
    reason_menu(ctl, parent).exec(QCursor.pos())
