"""Keyboard shortcuts: one table (used to bind them and to list them in the help dialog).

Later editors (labels, masks, boxes) add their own rows with :func:`register`; the help dialog lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from endoreview.ui.scale import fill_closable


@dataclass(frozen=True)
class Shortcut:
    action: str  # stable name, e.g. "player.play"
    keys: tuple[str, ...]  # QKeySequence strings
    group: str
    description: str


PLAYER_SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("player.toggle", ("Space",), "Player", "Play / pause"),
    Shortcut("player.prev", ("Left",), "Player", "Previous frame"),
    Shortcut("player.next", ("Right",), "Player", "Next frame"),
    Shortcut("player.back10", ("Shift+Left",), "Player", "Back 10 frames"),
    Shortcut("player.fwd10", ("Shift+Right",), "Player", "Forward 10 frames"),
    Shortcut("player.slower", ("J",), "Player", "Slower (down to 0.25×)"),
    Shortcut("player.pause", ("K",), "Player", "Pause"),
    Shortcut("player.faster", ("L",), "Player", "Play / faster (up to 4×)"),
    Shortcut("player.home", ("Home",), "Player", "First frame"),
    Shortcut("player.end", ("End",), "Player", "Last frame"),
    Shortcut("view.zoom_in", ("+", "="), "View", "Zoom in"),
    Shortcut("view.zoom_out", ("-",), "View", "Zoom out"),
    Shortcut("view.fit", ("0",), "View", "Fit frame to window"),
    Shortcut("view.fullscreen", ("F",), "View", "Full screen on / off (Esc leaves)"),
    Shortcut("view.masks", ("M",), "View", "Show / hide masks"),
    Shortcut("view.boxes", ("B",), "View", "Show / hide boxes"),
    Shortcut("review.next_disagreement", ("D",), "Review", "Next disagreement between model and labels"),
    Shortcut("review.prev_disagreement", ("Shift+D",), "Review", "Previous disagreement"),
    Shortcut("review.next_uncertain", ("U",), "Review", "Next low-confidence region"),
    Shortcut("review.prev_uncertain", ("Shift+U",), "Review", "Previous low-confidence region"),
    Shortcut("app.import", ("Ctrl+I",), "Application", "Import videos"),
    Shortcut("app.library", ("Ctrl+1",), "Application", "Library"),
    Shortcut("app.review", ("Ctrl+2",), "Application", "Player"),
    Shortcut("app.analyse", ("Ctrl+R",), "Application", "Analyse selected / open video"),
    Shortcut("app.help", ("F1", "?"), "Application", "This list of shortcuts"),
)

_registry: list[Shortcut] = list(PLAYER_SHORTCUTS)


def register(rows: tuple[Shortcut, ...]) -> None:
    for s in rows:
        if all(r.action != s.action for r in _registry):
            _registry.append(s)


def all_shortcuts() -> list[Shortcut]:
    return list(_registry)


def bind(
    parent: QWidget,
    actions: dict[str, Callable[[], None]],
    context: Qt.ShortcutContext = Qt.ShortcutContext.WindowShortcut,
) -> list[QShortcut]:
    """Create QShortcuts on ``parent`` for every registered action present in ``actions``."""
    made = []
    for s in _registry:
        fn = actions.get(s.action)
        if fn is None:
            continue
        for key in s.keys:
            sc = QShortcut(QKeySequence(key), parent)
            sc.setContext(context)
            sc.activated.connect(fn)
            sc.setObjectName(s.action)
            made.append(sc)
    return made


class ShortcutHelpDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = all_shortcuts()
        table = QTableWidget(len(rows), 3)
        table.setHorizontalHeaderLabels(["Keys", "Action", "Group"])
        for k, s in enumerate(rows):
            keys = " or ".join(
                QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText) or key for key in s.keys
            )
            for col, text in enumerate((keys, s.description, s.group)):
                table.setItem(k, col, QTableWidgetItem(text))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table = table
        fill_closable(self, table, 620, 640)
