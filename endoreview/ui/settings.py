"""The Settings dialog: reviewer identity, database location (SQLite file or PostgreSQL URL — the password goes to
the OS keyring or ``~/.pgpass``, never into the settings file), cache size limit with “Clear caches”, GPU/CPU
choice, default label set, text size (at the next start), and the keyboard shortcut reference.

Values are read and written by :mod:`endoreview.services.app_settings` on a worker thread; a database change
applies the next time the app starts.
"""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from endoreview.ui.scale import CHOICES as TEXT_SIZES
from endoreview.ui.scale import fit_dialog
from endoreview.ui.shortcuts import all_shortcuts
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    saved = Signal(object)  # Settings

    def __init__(
        self, runner: TaskRunner, label_sets: list[str] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.runner = runner
        self.settings: Any = None
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText("recorded as the author of every label you change")
        self.db_kind = QComboBox()
        self.db_kind.addItem("SQLite file on this workstation", "sqlite")
        self.db_kind.addItem("PostgreSQL server (shared)", "postgresql")
        self.sqlite_path = QLineEdit()
        self.sqlite_path.setPlaceholderText("default: the user data folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        sqlite_row = QHBoxLayout()
        sqlite_row.addWidget(self.sqlite_path, 1)
        sqlite_row.addWidget(browse)
        self.pg_url = QLineEdit()
        self.pg_url.setPlaceholderText("postgresql://user@host:5432/database")
        self.pg_password = QLineEdit()
        self.pg_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.pg_password.setPlaceholderText("kept in the OS keyring or ~/.pgpass, never in the settings file")
        self.cache_limit = QSpinBox()
        self.cache_limit.setRange(64, 1024 * 1024)
        self.cache_limit.setSuffix(" MB")
        self.cache_used = QLabel("…")
        self.storage = QLabel("…")  # everything the app keeps on disk besides the database: caches and runs
        self.storage.setWordWrap(True)
        self._runs = (0, 0)
        self.btn_clear = QPushButton("Clear caches")
        self.btn_clear.clicked.connect(self.clear_caches)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_limit)
        cache_row.addWidget(self.cache_used, 1)
        cache_row.addWidget(self.btn_clear)
        self.device = QComboBox()
        self.device.addItem("Automatic (GPU if present)", "auto")
        self.device.addItem("CPU only", "cpu")
        self.device.addItem("GPU (CUDA)", "cuda")
        self.text_size = QComboBox()
        self.text_size.setToolTip(
            "Applies at the next start. Automatic: larger text on a wide screen the operating system does not scale "
            "(120 % at 2560 px wide); the OS's own display scale always applies."
        )
        for pct in TEXT_SIZES:
            self.text_size.addItem("Automatic (by screen)" if pct == 0 else f"{pct} %", pct)
        self.label_set = QComboBox()
        self.label_set.setEditable(True)
        for name in label_sets or []:
            self.label_set.addItem(name)
        form = QFormLayout()
        form.addRow("Reviewer", self.reviewer)
        form.addRow("Database", self.db_kind)
        form.addRow("SQLite file", sqlite_row)
        form.addRow("PostgreSQL URL", self.pg_url)
        form.addRow("PostgreSQL password", self.pg_password)
        form.addRow("Cache limit", cache_row)
        form.addRow("Storage", self.storage)
        form.addRow("Models run on", self.device)
        form.addRow("Default label set", self.label_set)
        form.addRow("Text size", self.text_size)
        general = QWidget()
        general.setLayout(form)
        self.keys = QTableWidget(0, 3)
        self.keys.setHorizontalHeaderLabels(["Key", "Action", "Where"])
        self.keys.verticalHeader().setVisible(False)
        shortcuts = all_shortcuts()
        self.keys.setRowCount(len(shortcuts))
        for i, sc in enumerate(shortcuts):
            for j, text in enumerate((", ".join(sc.keys), sc.description, sc.group)):
                self.keys.setItem(i, j, QTableWidgetItem(str(text)))
        self.keys.resizeColumnsToContents()
        tabs = QTabWidget()
        tabs.addTab(general, "General")
        tabs.addTab(self.keys, "Keyboard shortcuts")
        self.status = QLabel()
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.btn_save = buttons.button(QDialogButtonBox.StandardButton.Save)
        lay = QVBoxLayout(self)
        lay.addWidget(tabs, 1)
        lay.addWidget(self.status)
        lay.addWidget(buttons)
        self.db_kind.currentIndexChanged.connect(self._kind_changed)
        fit_dialog(self, 680, 480)
        self.load()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Database file", self.sqlite_path.text(), "SQLite (*.sqlite3 *.db)"
        )
        if path:
            self.sqlite_path.setText(path)

    def _kind_changed(self) -> None:
        pg = self.db_kind.currentData() == "postgresql"
        self.pg_url.setEnabled(pg)
        self.pg_password.setEnabled(pg)
        self.sqlite_path.setEnabled(not pg)

    def load(self) -> None:
        def work() -> tuple[Any, int]:
            from endoreview.services.app_settings import cache_size, load_settings, runs_size

            return load_settings(), cache_size(), runs_size()

        self.runner.submit("load settings", work, on_done=self._fill)

    def _fill(self, data: tuple[Any, int, tuple[int, int]]) -> None:
        s, used, self._runs = data
        self.settings = s
        self.reviewer.setText(s.reviewer)
        self.db_kind.setCurrentIndex(max(0, self.db_kind.findData(s.db_kind)))
        self.sqlite_path.setText(s.sqlite_path)
        self.pg_url.setText(s.pg_url)
        self.cache_limit.setValue(int(s.cache_limit_mb))
        self.device.setCurrentIndex(max(0, self.device.findData(s.device)))
        if s.default_label_set:
            self.label_set.setCurrentText(s.default_label_set)
        if self.text_size.findData(s.text_size) < 0:
            self.text_size.addItem(f"{s.text_size} %", s.text_size)
        self.text_size.setCurrentIndex(self.text_size.findData(s.text_size))
        self._show_used(used)
        self._kind_changed()

    def _show_used(self, used: int) -> None:
        self.cache_used.setText(f"{used / 2**20:.1f} MB used")
        runs, n = self._runs
        self.storage.setText(
            f"{(used + runs) / 2**20:.1f} MB: caches {used / 2**20:.1f} MB, fine-tune runs {runs / 2**20:.1f} MB "
            f"({n} run folder{'s' if n != 1 else ''}, kept for resuming; not trimmed by the cache limit)"
        )

    def current(self) -> Any:
        from endoreview.services.app_settings import Settings, split_password

        url, pw = split_password(self.pg_url.text().strip())
        base = self.settings or Settings()
        return replace(
            base,
            reviewer=self.reviewer.text().strip(),
            db_kind=str(self.db_kind.currentData()),
            sqlite_path=self.sqlite_path.text().strip(),
            pg_url=url,
            cache_limit_mb=int(self.cache_limit.value()),
            device=str(self.device.currentData()),
            default_label_set=self.label_set.currentText().strip(),
            text_size=int(self.text_size.currentData()),
        ), (self.pg_password.text() or pw)

    def save(self) -> None:
        s, password = self.current()

        def work() -> str:
            from endoreview.services.app_settings import (
                save_settings,
                store_pg_password,
                trim_caches,
                validate,
            )

            validate(s)
            where = ""
            if s.db_kind == "postgresql" and password:
                where = store_pg_password(s.pg_url, password)
            save_settings(s)
            trim_caches(s.cache_limit_mb)  # a lower limit applies now
            return where

        def done(where: str) -> None:
            self.pg_password.clear()
            self.settings = s
            note = f" The password is kept in {where}." if where else ""
            self.status.setText(f"Saved. A database change applies at the next start.{note}")
            self.saved.emit(s)
            self.accept()

        def failed(exc: BaseException) -> None:
            self.status.setText(f"<span style='color:#ef5350'>{html.escape(str(exc))}</span>")

        self.runner.submit("save settings", work, on_done=done, on_error=failed)

    def clear_caches(self) -> None:
        from endoreview.services.app_settings import cache_size, clear_caches

        self.btn_clear.setEnabled(False)

        def done(freed: int) -> None:
            self.btn_clear.setEnabled(True)
            self.status.setText(
                f"Cleared {freed / 2**20:.1f} MB of proxies and thumbnails (rebuilt when needed)."
            )
            self.runner.submit("cache size", cache_size, on_done=self._show_used)

        self.runner.submit("clear caches", clear_caches, on_done=done)
