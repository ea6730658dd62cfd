"""Running blocking work off the GUI thread and handing results back to it.

:class:`TaskRunner` runs callables on a small thread pool and delivers ``on_done(result)`` / ``on_error(exc)`` on
the GUI thread through a queued Qt signal, one result per turn of the event loop. :class:`GuardedService` wraps a
service object so that any method call made on the GUI thread is recorded (and refused in strict mode) by
:mod:`endoreview.media.guard`: database reads can only happen through the runner.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from endoreview.media.guard import check_off_gui_thread
from endoreview.media.priority import READ_NICE, lower_priority

log = logging.getLogger(__name__)


class _Bridge(QObject):
    delivered = Signal(object)


class Task:
    """A handle: ``cancel()`` sets a flag the work function can poll via ``task.cancelled``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cancel = threading.Event()
        self.future: Future | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


class TaskRunner(QObject):
    """Runs work on ``workers`` threads; hands each result to the GUI thread, at most one per event-loop turn.

    Results that arrive together (opening a video: its metadata, its tracks, its labels) would otherwise all run
    in one turn, with the repaints they cause, and input and timers wait for the whole batch: ~200 ms when a
    30-minute video opened. One per turn lets the loop handle input and paint between them; a result arriving
    while none waits runs at once."""

    def __init__(self, workers: int = 2, parent: QObject | None = None, nice: int = READ_NICE) -> None:
        """``nice``: how much nicer than the GUI thread the workers run (:mod:`endoreview.media.priority`)."""
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="ui-task", initializer=lower_priority, initargs=(nice,)
        )
        self._bridge = _Bridge()
        self._bridge.delivered.connect(self._receive)
        self._pending: set[Task] = set()
        self._inbox: deque[tuple] = deque()
        self._turn = QTimer(self)  # fires on the loop's next turn, after what is already waiting there
        self._turn.setSingleShot(True)
        self._turn.setInterval(0)
        self._turn.timeout.connect(self._next)

    def submit(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        pass_task: bool = False,
    ) -> Task:
        task = Task(name)
        self._pending.add(task)

        def work() -> None:
            try:
                result = fn(task, *args) if pass_task else fn(*args)
            except BaseException as exc:  # delivered to the GUI
                log.warning("task %s failed: %s", name, exc, exc_info=True)
                self._bridge.delivered.emit((task, on_error, exc, True))
                return
            self._bridge.delivered.emit((task, on_done, result, False))

        task.future = self._pool.submit(work)
        return task

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the GUI thread (safe to call from any thread)."""
        self._bridge.delivered.emit((None, lambda _r: fn(), None, False))

    def _receive(self, payload: tuple) -> None:
        self._inbox.append(payload)
        if not self._turn.isActive():
            self._next()

    def _next(self) -> None:
        if self._inbox:
            self._turn.start()  # the next one waits for the next turn, even if this callback fails
            self._deliver(self._inbox.popleft())

    def _deliver(self, payload: tuple) -> None:
        task, cb, value, _is_error = payload
        if task is not None:
            self._pending.discard(task)
            if task.cancelled:
                return
        if cb is not None:
            try:
                cb(value)
            except Exception:  # a failing callback must not take the event loop down
                log.exception("callback of task %s failed", getattr(task, "name", "?"))

    @property
    def busy(self) -> int:
        return len(self._pending)

    def shutdown(self) -> None:
        for t in list(self._pending):
            t.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


class GuardedService:
    """Proxy for a service: every method call checks it is not on the GUI thread (kind ``db``)."""

    def __init__(self, service: Any, kind: str = "db") -> None:
        object.__setattr__(self, "_service", service)
        object.__setattr__(self, "_kind", kind)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._service, name)
        if not callable(attr):
            return attr
        kind, label = self._kind, f"{type(self._service).__name__}.{name}"

        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_off_gui_thread(kind, label)
            return attr(*args, **kwargs)

        return guarded
