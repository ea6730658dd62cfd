"""The correction tools (issue 9): masks, boxes, class labels, reviewing predictions, the review queue.

``attach_editing(main_window)`` adds them to the main window: the tool bar left of the player, the review-queue
dock, the timeline's segment editing and the keyboard shortcuts (listed in the help dialog). See
:mod:`endoreview.ui.editing.controller` for the behaviour and :mod:`endoreview.services.editing` for the actions.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from endoreview.ui.editing.canvas import Tool
from endoreview.ui.editing.controller import EditController
from endoreview.ui.editing.keys import EDIT_SHORTCUTS, bind_edit_keys
from endoreview.ui.editing.panel import EditToolbar, QueuePanel
from endoreview.ui.editing.queue_controller import QueueController
from endoreview.ui.editing.timeline_items import TimelineEditing

__all__ = ["EDIT_SHORTCUTS", "EditController", "Tool", "attach_editing"]


def attach_editing(win: Any) -> EditController:
    """Build the correction tools into ``win`` (a :class:`~endoreview.ui.main_window.MainWindow`); idempotent."""
    existing = getattr(win, "edit_ctl", None)
    if isinstance(existing, EditController):
        return existing
    ctl = EditController(win)
    ctl.toolbar = EditToolbar(ctl, win)
    win.addToolBar(Qt.ToolBarArea.LeftToolBarArea, ctl.toolbar)
    ctl.toolbar.setOrientation(Qt.Orientation.Vertical)
    panel = QueuePanel()
    dock = QDockWidget("Review queue", win)
    dock.setObjectName("reviewQueueDock")
    dock.setWidget(panel)
    win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    ctl.queue_dock = dock
    ctl.queue = QueueController(ctl, panel)
    ctl.timeline_items = TimelineEditing(ctl)
    ctl.shortcuts = bind_edit_keys(ctl, win.review_page)
    ctl.message.connect(win.show_message)
    tabs = getattr(win, "tabs", None)
    if tabs is not None:
        ctl.toolbar.setVisible(tabs.currentIndex() == 1)
        tabs.currentChanged.connect(lambda k: ctl.toolbar.setVisible(k == 1))
    win.edit_ctl = ctl
    return ctl
