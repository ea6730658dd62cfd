"""Saving edits the moment they are made, in order, off the GUI thread.

:class:`EditWriter` runs every edit on one dedicated worker thread (so actions commit in the order the reviewer
made them and the command stack of :class:`~endoreview.services.editing.EditingService` stays consistent), then
reads back the labels the action touched and hands ``(result, snapshot)`` to the GUI thread. A write that fails
(a stale label edited on another workstation, a bad input) is reported with its message; nothing else is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from endoreview.media.guard import check_off_gui_thread
from endoreview.services.records import Label, LabelKind

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """Labels read back after an action: whole video (``full``) or just ``frames`` (plus all segments)."""

    video_id: int
    full: bool
    frames: dict[int, list[Label]] = field(default_factory=dict)
    segments: list[Label] = field(default_factory=list)  # segments and video classes


def read_snapshot(store: Any, video_id: int, frames: Sequence[int] | None) -> Snapshot:
    check_off_gui_thread("db", "edit snapshot")
    segs = store.labels_for_video(video_id, kinds=[LabelKind.SEGMENT, LabelKind.VIDEO_CLASS])
    if frames is None:
        per: dict[int, list[Label]] = {}
        for x in store.labels_for_video(video_id, kinds=[LabelKind.MASK, LabelKind.BOX]):
            per.setdefault(int(x.frame), []).append(x)
        return Snapshot(video_id, True, per, segs)
    return Snapshot(video_id, False, {f: store.labels_for_frame(video_id, f) for f in set(frames)}, segs)


class _Bridge(QObject):
    delivered = Signal(object)


class EditWriter(QObject):
    """One worker thread for every edit; ``busy`` counts actions not yet saved."""

    saved = Signal(str, object, object)  # name, result, Snapshot
    failed = Signal(str, str)  # name, message

    def __init__(self, service_factory: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = service_factory
        self._service: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edit-writer")
        self._bridge = _Bridge()
        self._bridge.delivered.connect(self._deliver)
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    @property
    def undo_state(self) -> tuple[bool, bool]:
        """(can undo, can redo) of the command stack, as the last saved action left it."""
        svc = self._service
        return (svc.can_undo, svc.can_redo) if svc is not None else (False, False)

    def service(self) -> Any:
        """The editing service (worker thread only)."""
        check_off_gui_thread("db", "editing service")
        if self._service is None:
            self._service = self._factory()
        return self._service

    def submit(
        self,
        name: str,
        fn: Callable[[Any], Any],
        video_id: int,
        frames: Sequence[int] | None = (),
        on_done: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``fn(service)`` in order; then read back ``frames`` (None: the whole video) and deliver."""
        with self._lock:
            self._busy += 1

        def work() -> None:
            try:
                result = fn(self.service())
                snap = read_snapshot(self._service.store, video_id, None if frames is None else list(frames))
            except Exception as exc:  # shown to the reviewer, the app carries on
                log.warning("edit %s failed: %s", name, exc, exc_info=True)
                self._bridge.delivered.emit((name, None, None, str(exc), None))
                return
            self._bridge.delivered.emit((name, result, snap, None, on_done))

        self._pool.submit(work)

    def _deliver(self, payload: tuple) -> None:
        name, result, snap, error, on_done = payload
        with self._lock:
            self._busy -= 1
        if error is not None:
            self.failed.emit(name, error)
            return
        self.saved.emit(name, result, snap)
        if on_done is not None:
            on_done(result)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
