"""The correction tools (issue 9): masks, boxes, class labels, reviewing predictions, the review queue.

``build_editing(main_window)`` builds them into the main window (which calls it once, after its first paint): the tool bar left of the player, the review-queue
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

__all__ = ["EDIT_SHORTCUTS", "EditController", "Tool", "build_editing"]


def build_editing(win: Any) -> EditController:
    """Build the correction tools into ``win`` (a :class:`~endoreview.ui.main_window.MainWindow`, which keeps the
    returned controller); call :meth:`MainWindow.editing` instead, which builds them once."""
    backend = win.backend
    ctl = EditController(
        lambda: backend.store,
        win.runner,
        win.player,
        win.player_widget,
        win.review_ctl,
        win.timeline,
        on_status_saved=win.library_ctl.refresh,
        parent=win,
    )
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
    ctl.queue = QueueController(ctl, panel, backend, win.open_video)
    ctl.timeline_items = TimelineEditing(ctl)
    ctl.shortcuts = bind_edit_keys(ctl, win.review_page)
    ctl.message.connect(win.show_message)
    ctl.toolbar.setVisible(win.tabs.currentIndex() == 1)
    win.tabs.currentChanged.connect(lambda k: ctl.toolbar.setVisible(k == 1))
    return ctl
