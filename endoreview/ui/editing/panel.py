"""Widgets of the correction tools: the tool bar (left of the player) and the review-queue dock.

They hold no domain state: they show the :class:`EditController`'s state and call it when clicked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
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
    """Two compact columns (fits a 768-px-high screen): tools, class, mask actions, review, video, undo."""

    def __init__(self, ctl: EditController, parent: QWidget | None = None) -> None:
        super().__init__("Correction tools", parent)
        self.setObjectName("editToolbar")
        self.ctl = ctl
        self.setMovable(False)
        body = QWidget()
        body.setStyleSheet(
            "QToolButton { padding: 3px 6px; border: 1px solid #3a3a46; border-radius: 3px; }"
            "QToolButton:checked { background: #1e88e5; color: white; border-color: #90caf9; font-weight: 600; }"
        )
        grid = QGridLayout(body)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(3)
        self._grid, self._row = grid, 0
        self.addWidget(body)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.tool_buttons: dict[Tool, QToolButton] = {}
        self._caption("Tools")
        cells = []
        for tool, text, key, tip in TOOLS:
            b = QToolButton()
            b.setText(f"{text} ({key})")
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _c=False, t=tool: ctl.set_tool(t))
            self.group.addButton(b)
            self.tool_buttons[tool] = b
            cells.append(b)
        self._pairs(cells)
        self._caption("Class (keys 1–9)")
        self.cls = QComboBox()
        self.cls.setToolTip("Class for new masks, boxes and segments (keys 1–9)")
        self.cls.activated.connect(lambda k: ctl.session.class_key(k))
        # as wide from the start as with the video's classes in it: sized by its contents, it widened the panel
        # when a video opened, and the player and timeline beside it were laid out and painted again
        self.cls.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.cls.setMinimumContentsLength(12)
        self._full(self.cls)
        self.brush = QLabel()
        self.grow = QSpinBox()
        self.grow.setRange(1, 50)
        self.grow.setValue(ctl.grow_px)
        self.grow.setSuffix(" px")
        self.grow.setToolTip("How far Grow (G) / Shrink (Shift+G) move the outline")
        self.grow.valueChanged.connect(lambda v: setattr(ctl, "grow_px", int(v)))
        self._pairs([self.brush, self.grow])
        self._caption("Mask")
        self._pairs(
            [
                self._button(
                    "Fill holes (H)",
                    "Fill the holes of this frame's mask",
                    lambda: ctl.session.fill_holes(ctl.frame),
                ),
                self._button(
                    "Grow (G)", "Grow this frame's mask", lambda: ctl.session.grow(ctl.frame, ctl.grow_px)
                ),
                self._button(
                    "◀ Copy (C)",
                    "Copy the previous frame's mask here",
                    lambda: ctl.session.copy_from(ctl.frame, -1),
                ),
                self._button(
                    "Shrink (⇧G)",
                    "Shrink this frame's mask",
                    lambda: ctl.session.grow(ctl.frame, -ctl.grow_px),
                ),
                self._button(
                    "Copy ▶ (⇧C)",
                    "Copy the next frame's mask here",
                    lambda: ctl.session.copy_from(ctl.frame, 1),
                ),
                self._button(
                    "Interpolate (⇧T)",
                    "Fill the selected box's track between keyframes",
                    ctl.session.interpolate_track,
                ),  # fmt: skip
                self._button(
                    "◀ Propagate",
                    "Carry this mask backward to the previous keyframe (Ctrl+←)",
                    lambda: ctl.propagate(False),
                ),  # fmt: skip
                self._button(
                    "Propagate ▶",
                    "Carry this mask forward to the next keyframe (Ctrl+→)",
                    lambda: ctl.propagate(True),
                ),  # fmt: skip
            ]
        )
        self._caption("Review the model")
        self.thr = QDoubleSpinBox()
        self.thr.setRange(0.0, 1.0)
        self.thr.setSingleStep(0.05)
        self.thr.setValue(ctl.session.bulk_threshold)
        self.thr.setPrefix("≥ ")
        self.thr.setToolTip("Bulk accept takes suggestions scoring at least this")
        self.thr.valueChanged.connect(self._set_threshold)
        self.bulk_btn = self._button(
            "Bulk accept (⇧A)",
            "Accept every visible suggestion between In and Out at or above the score (the count is shown below)",
            lambda: ctl.session.bulk_accept(ctl.frame),
        )
        self._pairs(
            [
                self._button(
                    "Accept (A)", "Accept the suggestion under the mouse / on this frame", ctl.accept
                ),
                self._button("Reject (R)", "Reject it (Shift+R: with a reason)", lambda: ctl.reject()),
                self._button("Edit (E)", "Edit it (it stays linked to the model)", ctl.edit),
                self._button(
                    "Reason… (⇧R)", "Reject with a reason from a short list", lambda: popup_reasons(ctl, self)
                ),  # fmt: skip
                self.bulk_btn,
                self.thr,
            ]
        )
        self.blind = QCheckBox("Blind first pass")
        self.blind.setToolTip(
            "Hide the model's output until you have labelled; unticking reveals and compares"
        )
        self.blind.toggled.connect(ctl.set_blind)
        self._full(self.blind)
        self._caption("Video")
        self.vclass = QComboBox()
        self.vclass.setToolTip("The class of the whole video")
        self.vclass.activated.connect(
            lambda k: ctl.session.set_video_class(self.vclass.itemText(k)) if k > 0 else None
        )
        self.status = QComboBox()
        self.status.setToolTip("Review status of this video (shown in the library)")
        for key, text in STATUS:
            self.status.addItem(text, key)
        self.status.activated.connect(lambda k: ctl.set_review_status(self.status.itemData(k)))
        self._pairs([self.vclass, self.status])
        self.undo_btn = self._button("Undo", "Undo the last edit (Ctrl+Z)", ctl.undo)
        self.redo_btn = self._button("Redo", "Redo (Ctrl+Shift+Z)", ctl.session.redo)
        self._pairs([self.undo_btn, self.redo_btn])
        self.marks = QLabel()
        self.marks.setWordWrap(True)
        self.marks.setStyleSheet("color:#cfcfd8;")
        self._full(self.marks)
        grid.setRowStretch(self._row, 1)
        ctl.stateChanged.connect(self.sync)
        self.sync()

    def _caption(self, text: str) -> None:
        lab = QLabel(text)
        lab.setStyleSheet("color:#9e9eb0; font-size: 9pt; padding-top: 4px;")
        self._full(lab)

    def _full(self, w: QWidget) -> None:
        self._grid.addWidget(w, self._row, 0, 1, 2)
        self._row += 1

    def _pairs(self, widgets: list[QWidget]) -> None:
        for k, w in enumerate(widgets):
            self._grid.addWidget(w, self._row + k // 2, k % 2)
        self._row += (len(widgets) + 1) // 2

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(slot)
        return b

    def _set_threshold(self, v: float) -> None:
        self.ctl.session.bulk_threshold = float(v)
        self.sync()

    def sync(self) -> None:
        c, s = self.ctl, self.ctl.session
        self.tool_buttons[c.tools.tool].setChecked(True)
        if [self.cls.itemText(k).split(" ", 1)[-1] for k in range(self.cls.count())] != list(s.classes[:9]):
            self.cls.clear()
            for k, name in enumerate(s.classes[:9]):
                self.cls.addItem(f"{k + 1} {name}")
        if s.current_class in s.classes:
            self.cls.setCurrentIndex(s.classes.index(s.current_class))
        if self.vclass.count() != len(s.video_classes) + 1:
            self.vclass.clear()
            self.vclass.addItem("Video class…")
            self.vclass.addItems(list(s.video_classes))
        vc = s.video_class()  # the reviewer's class for this video, shown again when the video is reopened
        self.vclass.setCurrentIndex(max(0, self.vclass.findText(vc)) if vc else 0)
        self.brush.setText(f"Brush {c.brush_radius:g} px  [ ]")
        k = self.status.findData(s.review_status)
        if k >= 0:
            self.status.setCurrentIndex(k)
        self.blind.blockSignals(True)
        self.blind.setChecked(s.blind)
        self.blind.blockSignals(False)
        self.undo_btn.setEnabled(s.can_undo)
        self.redo_btn.setEnabled(s.can_redo)
        mi = "—" if s.mark_in is None else str(s.mark_in + 1)
        mo = "—" if s.mark_out is None else str(s.mark_out)
        pending = f" · saving {s.writer.busy}…" if s.writer.busy else ""
        # the count is in this line, not on the button: a wider button widened the panel (and laid out the player
        # and timeline beside it again) whenever a video's suggestions arrived
        bulk = ""
        preview = s.bulk_preview(c.frame) if s.loaded and not s.blind else None
        if preview is not None:
            (a, b), counted = preview
            if counted is None:  # a long range: read when Shift+A is pressed, not for this line
                bulk = f"\nBulk accept reads frames {a + 1}–{b} when pressed"
            else:
                take, hidden = counted
                bulk = f"\nBulk accept takes {len(take)} suggestion(s)" + (
                    f" ({hidden} hidden left open)" if hidden else ""
                )
        self.marks.setText(f"In {mi} · Out {mo}{pending}{bulk}")


class QueuePanel(QWidget):
    """The review queue: uncertain regions, most uncertain first; double-click or N goes to an item."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setWordWrap(True)
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
            self.list.addItem("Nothing uncertain left to review.")


def popup_reasons(ctl: EditController, parent: QWidget) -> None:
    reason_menu(ctl, parent).exec(QCursor.pos())
