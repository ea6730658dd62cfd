"""The About dialog (app version, the active model's card, the research-use notice, licences of the bundled
components) and the app's error handling: rotating logs that name videos by id, and a dialog with a short message
and the log's location for an unexpected exception (the traceback goes to the log, never only to a console).

``install_error_handling()`` is called once at start-up; ``AboutDialog(runner)`` loads its content off the GUI
thread.
"""

from __future__ import annotations

import html
import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QMessageBox,
    QTextBrowser,
    QWidget,
)

from endoreview import RESEARCH_NOTICE, __version__
from endoreview.ui.scale import fill_closable
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

LOG_NAME = "endoreview.log"
LOG_BYTES, LOG_BACKUPS = 2 * 1024 * 1024, 5


def licences_text() -> str:
    """packaging/LICENSES.md from a checkout or a bundle (resources' parent); a clear line when absent."""
    from endoreview.paths import resources_dir

    for p in (resources_dir().parent / "packaging" / "LICENSES.md", resources_dir() / "LICENSES.md"):
        if p.is_file():
            return p.read_text(encoding="utf-8")
    return (
        "Endo-FM: Apache-2.0. The full licence list (packaging/LICENSES.md) is not part of this installation."
    )


def model_card(store: Any) -> dict[str, Any]:
    """The active model's card: name, version, parent, date, held-out metrics, and its MODEL_CARD.md if any."""
    mv = store.active_model_version()
    if mv is None:
        from endoreview.services.model_resolver import demo_model_dir

        demo = demo_model_dir()
        return {
            "name": "the bundled demo model" if demo else "none",
            "card": _card_file(demo) if demo else "",
        }
    return {
        "name": mv.name,
        "id": mv.id,
        "architecture": mv.architecture,
        "created": f"{mv.created_at:%Y-%m-%d %H:%M}",
        "parent": mv.parent_id,
        "metrics": {k: v for k, v in mv.metrics.items() if k in ("val", "test")},
        "notes": mv.notes,
        "card": _card_file(Path(mv.files_dir)),
    }


def _card_file(d: Path | None) -> str:
    if d is None:
        return ""
    p = Path(d) / "MODEL_CARD.md"
    return p.read_text(encoding="utf-8")[:8000] if p.is_file() else ""


def about_html(card: dict[str, Any], licences: str) -> str:
    metrics = card.get("metrics") or {}
    figures = "".join(
        f"<li>{html.escape(split)}: "
        + ", ".join(
            f"{html.escape(k)} {float(v):.3f}" for k, v in list(m.items())[:6] if isinstance(v, int | float)
        )
        + "</li>"
        for split, m in metrics.items()
        if isinstance(m, dict)
    )
    details = (
        f"Version {card['id']} · {html.escape(str(card.get('architecture')))} · {card.get('created')}"
        if "id" in card
        else ""
    )
    return (
        f"<h2>EndoReview {html.escape(__version__)}</h2>"
        f"<p style='color:#ffb74d'><b>{html.escape(RESEARCH_NOTICE)}</b></p>"
        f"<h3>Active model: {html.escape(str(card.get('name')))}</h3><p>{details}</p>"
        + (f"<ul>{figures}</ul>" if figures else "")
        + (f"<pre>{html.escape(card['card'])}</pre>" if card.get("card") else "")
        + f"<h3>Licences</h3><pre>{html.escape(licences)}</pre>"
    )


class AboutDialog(QDialog):
    def __init__(self, runner: TaskRunner, store_fn: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About EndoReview")
        self.setObjectName("aboutDialog")
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(
            f"<h2>EndoReview {html.escape(__version__)}</h2><p>{html.escape(RESEARCH_NOTICE)}</p>"
        )
        self.loaded = False
        fill_closable(self, self.text, 720, 640)

        def work() -> str:
            card = model_card(store_fn()) if store_fn is not None else {"name": "unknown (no database open)"}
            return about_html(card, licences_text())

        runner.submit(
            "about", work, on_done=self._show, on_error=lambda e: self._show(f"<p>{html.escape(str(e))}</p>")
        )

    def _show(self, text: str) -> None:
        self.text.setHtml(text)
        self.loaded = True


# ---- error handling ---------------------------------------------------------------------------------------------
def log_path() -> Path:
    from endoreview.paths import logs_dir

    return logs_dir() / LOG_NAME


def setup_app_logging(level: int = logging.INFO) -> Path:
    """Rotating log file (2 MB × 5) with video paths and file names replaced by ``<video ID>``."""
    from endoreview.jobs.runner import SCRUBBER

    path = log_path()
    root = logging.getLogger()
    if not any(getattr(h, "_endoreview", False) for h in root.handlers):
        h = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        h._endoreview = True  # type: ignore[attr-defined]
        h.addFilter(SCRUBBER)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        h.setLevel(level)
        if root.level > level or root.level == logging.NOTSET:
            for other in root.handlers:  # the console keeps the verbosity it had
                if other.level == logging.NOTSET:
                    other.setLevel(root.level or logging.WARNING)
            root.setLevel(level)
        root.addHandler(h)
    return path


class _ErrorBridge(QObject):
    show = Signal(str)


class ErrorReporter:
    """``sys.excepthook`` (and ``threading.excepthook``): the traceback goes to the log; the user gets a short
    message and where the log is, on the GUI thread, once per burst of errors."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent
        self.path = setup_app_logging()
        self.shown: list[str] = []
        self.dialog: QMessageBox | None = None
        self._bridge = _ErrorBridge()
        self._bridge.show.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self._prev = sys.excepthook, threading.excepthook

    def install(self) -> ErrorReporter:
        sys.excepthook = self.hook
        threading.excepthook = lambda args: self.hook(args.exc_type, args.exc_value, args.exc_traceback)
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._prev

    def hook(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._prev[0](exc_type, exc, tb)
            return
        logging.getLogger("endoreview").error("unexpected error", exc_info=(exc_type, exc, tb))
        for h in logging.getLogger().handlers:
            h.flush()
        short = f"{getattr(exc_type, '__name__', 'Error')}: {exc}"[:300]
        self._bridge.show.emit(short)

    def _show(self, short: str) -> None:
        self.shown.append(short)
        if self.dialog is not None and self.dialog.isVisible():
            return
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Something went wrong")
        box.setText(
            "EndoReview hit an unexpected error. Your labels are saved; the action that failed was not "
            f"completed.\n\n{short}"
        )
        box.setInformativeText(f"Details are in the log:\n{self.path}")
        box.setModal(False)
        box.show()
        self.dialog = box


def install_error_handling(parent: QWidget | None = None) -> ErrorReporter:
    return ErrorReporter(parent).install()
