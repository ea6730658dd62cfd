"""Seeing other workstations' edits without restarting: poll the store's change counter.

``ChangePoller(store).poll()`` returns the change sets committed since the last poll, oldest first, each once.
On PostgreSQL a transaction that started earlier can commit a lower id after a higher one was seen, so the poller
re-reads a window of ``overlap`` ids below its cursor and drops the ones it already returned. By default it leaves
out this workstation's own changes (same reviewer and host), which the UI already shows.
"""

from __future__ import annotations

from endoreview.store import Store
from endoreview.store.records import ChangeSet


class ChangePoller:
    def __init__(
        self,
        store: Store,
        *,
        video_id: int | None = None,
        overlap: int | None = None,
        include_own: bool = False,
    ):
        self.store = store
        self.video_id = video_id
        self.overlap = overlap if overlap is not None else (0 if store.dialect == "sqlite" else 100)
        self.include_own = include_own
        self.cursor = store.change_cursor()
        # what is already committed in the overlap window is old news, not a change to report
        self._seen: set[int] = {
            c.id for c in store.changes_since(self.cursor, video_id=video_id, overlap=self.overlap)
        }

    def poll(self) -> list[ChangeSet]:
        found = self.store.changes_since(self.cursor, video_id=self.video_id, overlap=self.overlap)
        fresh = [c for c in found if c.id not in self._seen and c.id > self.cursor - self.overlap]
        for c in fresh:
            self._seen.add(c.id)
        if found:
            self.cursor = max(self.cursor, max(c.id for c in found))
        self._seen = {i for i in self._seen if i > self.cursor - self.overlap}
        if not self.include_own:
            fresh = [c for c in fresh if not (c.actor == self.store.reviewer and c.host == self.store.host)]
        return fresh
