"""Next-item navigation through the review queue (built off the GUI thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from endoreview.media.guard import check_off_gui_thread
from endoreview.services.queue import QueueItem, ReviewQueue
from endoreview.ui.editing.panel import QueuePanel

if TYPE_CHECKING:
    from endoreview.ui.backend import Backend
    from endoreview.ui.editing.controller import EditController


class QueueController(QObject):
    def __init__(
        self, ctl: EditController, panel: QueuePanel, backend: Backend, open_video: Callable[[int], None]
    ) -> None:
        """``backend``: the app's open services (the queue reads its store, project and library); ``open_video``:
        opens a video in the player (the main window's)."""
        super().__init__(ctl)
        self.ctl, self.panel, self.backend, self._open_video = ctl, panel, backend, open_video
        self.items: list[QueueItem] = []
        self.names: dict[int, str] = {}
        self.position = -1
        self._pending: QueueItem | None = None
        self._switched_from: int | None = None
        panel.refresh_btn.clicked.connect(self.rebuild)
        panel.list.itemDoubleClicked.connect(lambda row: self.go(int(row.data(256) or 0)))
        ctl.review_ctl.videoOpened.connect(self._on_opened)

    def rebuild(self, then_next: bool = False) -> None:
        backend = self.backend

        def build() -> tuple[list[QueueItem], dict[int, str]]:
            check_off_gui_thread("db", "review queue")
            q = ReviewQueue(backend.store, backend.project.id)
            items = q.build()
            names = {
                v.id: str(v.meta.get("name") or v.path.rsplit("/", 1)[-1])
                for v in backend.library.list_videos()
            }
            return items, names

        def done(res: Any) -> None:
            self.items, self.names = res
            self.position = -1
            self.panel.show_items(self.items, self.names, -1)
            if then_next:
                self.next(1)

        self.ctl.runner.submit("review queue", build, on_done=done)

    def next(self, step: int = 1) -> None:
        if not self.items:
            if step > 0 and self.position == -1:
                self.rebuild(then_next=True)
            return
        k = self.position + step
        if not 0 <= k < len(self.items):
            self.ctl.message.emit("End of the review queue." if step > 0 else "Start of the review queue.")
            return
        self.go(k)

    def go(self, k: int) -> None:
        if not 0 <= k < len(self.items):
            return
        self.position = k
        it = self.items[k]
        self.panel.show_items(self.items, self.names, k)
        if self.ctl.video_id != it.video_id:
            self._pending = it
            self._switched_from = self.ctl.video_id
            self._open_video(it.video_id)
        else:
            self.ctl.player_widget.announce_switch(None)
            self._arrive(it)

    def _on_opened(self, info: Any) -> None:
        it = self._pending
        if it is not None and it.video_id == info.video_id:
            self._pending = None
            name = self.names.get(info.video_id, info.name)
            old = self.names.get(self._switched_from) if self._switched_from is not None else None
            note = f"⇄ Switched to {name}" + (f" (from {old})" if old else "") + " by the review queue"
            self.ctl.player_widget.announce_switch(note)
            QTimer.singleShot(0, lambda: self._arrive(it, note + ". "))
        else:
            self.ctl.player_widget.announce_switch(None)  # opened by hand: the reviewer chose it

    def _arrive(self, it: QueueItem, note: str = "") -> None:
        self.ctl.player.pause()
        self.ctl.player.seek(it.start)
        self.ctl.session.set_marks(it.start, it.end)
        self.ctl.message.emit(
            f"{note}Queue item {self.position + 1}/{len(self.items)}: frames {it.start + 1}–{it.end}, "
            f"uncertainty {it.score:.2f} ({it.reason}). In/Out set to the region."
        )
