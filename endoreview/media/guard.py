"""A structural guard: blocking work (decoding, thumbnails, database reads, inference) never runs on the GUI thread.

The UI calls :func:`mark_gui_thread` once at start-up. Every blocking entry point in the media layer (and every
service call made through :class:`endoreview.ui.tasks.GuardedService`) calls :func:`check_off_gui_thread` first. On
the GUI thread that call records a :class:`Violation` and, in strict mode (tests, ``ENDOREVIEW_STRICT_THREADS=1``),
raises :class:`BlockingCallOnGuiThread` so the mistake is found at once instead of as a stutter in the field.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass

log = logging.getLogger(__name__)

_lock = threading.Lock()
_gui_thread: int | None = None
_strict: bool = False
_violations: list[Violation] = []


class BlockingCallOnGuiThread(RuntimeError):
    """Raised in strict mode when decoding / thumbnails / DB reads / inference are called on the GUI thread."""


@dataclass(frozen=True)
class Violation:
    kind: str  # "decode", "thumbnail", "db", "inference", "proxy", "open"
    what: str
    stack: str


def mark_gui_thread(strict: bool | None = None) -> None:
    """Declare the calling thread to be the GUI thread (call from the Qt main thread at start-up)."""
    global _gui_thread, _strict
    with _lock:
        _gui_thread = threading.get_ident()
        if strict is None:
            strict = os.environ.get("ENDOREVIEW_STRICT_THREADS", "") not in ("", "0")
        _strict = bool(strict)


def unmark_gui_thread() -> None:
    global _gui_thread
    with _lock:
        _gui_thread = None


def on_gui_thread() -> bool:
    return _gui_thread is not None and threading.get_ident() == _gui_thread


def check_off_gui_thread(kind: str, what: str = "") -> None:
    """Record (and in strict mode refuse) a blocking call made on the GUI thread."""
    if not on_gui_thread():
        return
    v = Violation(kind=kind, what=what, stack="".join(traceback.format_stack(limit=12)[:-1]))
    with _lock:
        _violations.append(v)
    log.warning("blocking %s call on the GUI thread: %s", kind, what)
    if _strict:
        raise BlockingCallOnGuiThread(f"{kind} call on the GUI thread: {what}")


def violations() -> list[Violation]:
    with _lock:
        return list(_violations)


def clear_violations() -> None:
    with _lock:
        _violations.clear()
