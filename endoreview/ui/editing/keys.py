"""Keyboard shortcuts of the correction tools (registered in the one shortcut table, so F1 lists them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QShortcut
from PySide6.QtWidgets import QWidget

from endoreview.ui.editing.canvas import Tool
from endoreview.ui.editing.panel import popup_reasons
from endoreview.ui.shortcuts import Shortcut, bind, register

if TYPE_CHECKING:
    from endoreview.ui.editing.controller import EditController

EDIT_SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("edit.navigate", ("V",), "Edit", "Navigate tool (pan / zoom; pick what A, R, E act on)"),
    Shortcut("edit.brush", ("W",), "Edit", "Brush tool (each stroke is one undo step)"),
    Shortcut("edit.eraser", ("X",), "Edit", "Eraser tool"),
    Shortcut("edit.polygon", ("P",), "Edit", "Polygon tool (Enter fills, Esc cancels)"),
    Shortcut("edit.box", ("T",), "Edit", "Box tool (draw, move, resize)"),
    Shortcut("edit.smaller", ("[",), "Edit", "Smaller brush"),
    Shortcut("edit.bigger", ("]",), "Edit", "Bigger brush"),
    Shortcut("edit.fill_holes", ("H",), "Edit", "Fill holes in this frame's mask"),
    Shortcut("edit.grow", ("G",), "Edit", "Grow this frame's mask by N px"),
    Shortcut("edit.shrink", ("Shift+G",), "Edit", "Shrink this frame's mask by N px"),
    Shortcut("edit.copy_prev", ("C",), "Edit", "Copy the mask of the previous frame"),
    Shortcut("edit.copy_next", ("Shift+C",), "Edit", "Copy the mask of the next frame"),
    Shortcut(
        "edit.propagate_fwd", ("Ctrl+Right",), "Edit", "Propagate this mask forward to the next keyframe"
    ),
    Shortcut(
        "edit.propagate_back", ("Ctrl+Left",), "Edit", "Propagate this mask backward to the previous keyframe"
    ),
    Shortcut(
        "edit.interpolate", ("Shift+T",), "Edit", "Interpolate the selected box's track between keyframes"
    ),
    Shortcut(
        "edit.delete",
        ("Delete", "Backspace"),
        "Edit",
        "Delete the selected box / the segment at the playhead",
    ),
    Shortcut("edit.clear_mask", ("Shift+Del",), "Edit", "Clear this frame's mask (of the current class)"),
    Shortcut("edit.undo", ("Ctrl+Z",), "Edit", "Undo (every tool, one stack)"),
    Shortcut("edit.redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit", "Redo"),
    Shortcut("label.in", ("I",), "Labels", "Mark In (segment start) at the playhead"),
    Shortcut("label.out", ("O",), "Labels", "Mark Out (segment end) at the playhead"),
    *(
        Shortcut(
            f"label.class_{k}",
            (str(k),),
            "Labels",
            f"Class {k}: segment In–Out, or re-class the selected box",
        )
        for k in range(1, 10)
    ),
    Shortcut("label.split", ("S",), "Labels", "Split the segment at the playhead"),
    Shortcut("label.merge", ("Shift+S",), "Labels", "Merge the segment at the playhead with the next one"),
    Shortcut("review.accept", ("A",), "Review", "Accept the suggestion under the mouse / on this frame"),
    Shortcut("review.reject", ("R",), "Review", "Reject the suggestion under the mouse / on this frame"),
    Shortcut("review.reject_reason", ("Shift+R",), "Review", "Reject with a reason from a short list"),
    Shortcut("review.edit", ("E",), "Review", "Edit the suggestion under the mouse"),
    Shortcut(
        "review.bulk_accept", ("Shift+A",), "Review", "Accept all suggestions In–Out above the threshold"
    ),
    Shortcut("review.next_item", ("N",), "Review", "Next item of the review queue"),
    Shortcut("review.prev_item", ("Shift+N",), "Review", "Previous item of the review queue"),
)


def bind_edit_keys(ctl: EditController, page: QWidget) -> list[QShortcut]:
    register(EDIT_SHORTCUTS)
    actions = {
        "edit.navigate": lambda: ctl.set_tool(Tool.NAVIGATE),
        "edit.brush": lambda: ctl.set_tool(Tool.BRUSH),
        "edit.eraser": lambda: ctl.set_tool(Tool.ERASER),
        "edit.polygon": lambda: ctl.set_tool(Tool.POLYGON),
        "edit.box": lambda: ctl.set_tool(Tool.BOX),
        "edit.smaller": lambda: ctl.set_brush(-1),
        "edit.bigger": lambda: ctl.set_brush(1),
        "edit.fill_holes": lambda: ctl.session.fill_holes(ctl.frame),
        "edit.grow": lambda: ctl.session.grow(ctl.frame, ctl.grow_px),
        "edit.shrink": lambda: ctl.session.grow(ctl.frame, -ctl.grow_px),
        "edit.copy_prev": lambda: ctl.session.copy_from(ctl.frame, -1),
        "edit.copy_next": lambda: ctl.session.copy_from(ctl.frame, 1),
        "edit.propagate_fwd": lambda: ctl.propagate(True),
        "edit.propagate_back": lambda: ctl.propagate(False),
        "edit.interpolate": ctl.session.interpolate_track,
        "edit.delete": lambda: ctl.session.delete_selection(ctl.frame),
        "edit.clear_mask": lambda: ctl.session.clear_mask(ctl.frame),
        "edit.undo": ctl.undo,
        "edit.redo": ctl.session.redo,
        "label.in": lambda: ctl.session.set_mark("in", ctl.frame),
        "label.out": lambda: ctl.session.set_mark("out", ctl.frame),
        "label.split": lambda: ctl.session.split_segment(ctl.frame),
        "label.merge": lambda: ctl.session.merge_segment(ctl.frame),
        "review.accept": ctl.accept,
        "review.reject": lambda: ctl.reject(),
        "review.reject_reason": lambda: popup_reasons(ctl, page),
        "review.edit": ctl.edit,
        "review.bulk_accept": lambda: ctl.session.bulk_accept(ctl.frame),
        "review.next_item": lambda: ctl.queue.next(1),
        "review.prev_item": lambda: ctl.queue.next(-1),
    }
    for k in range(1, 10):
        actions[f"label.class_{k}"] = lambda k=k: ctl.session.class_key(k - 1)
    return bind(page, actions, Qt.ShortcutContext.WidgetWithChildrenShortcut)
