"""One app per database on a workstation: :class:`InstanceLock`.

Two EndoReview windows on the same database each keep their own undo history, review session and job list, and
each reaps the other's jobs as dead; the second one is therefore refused with a message naming the database and
the process that has it open. The lock is an ``flock`` on a file in ``<data dir>/locks`` named after the database
(its file for SQLite, its URL without the password otherwise), so it ends with the process that holds it, crash and
``kill -9`` included: a stale lock never blocks a restart. Jobs do not take it (they share the database by design),
nor do other workstations on a shared PostgreSQL database.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO


class AlreadyOpenError(RuntimeError):
    """Another EndoReview window has this database open (the message says which process)."""


def lock_key(url: str) -> str:
    """What identifies a database: its resolved file for SQLite, its URL without the password otherwise."""
    from endoreview.store.database import describe_url

    if url.startswith("sqlite") and "///" in url:
        path = url.split("///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            return "sqlite:" + str(Path(path).expanduser().resolve())
    return describe_url(url)


class InstanceLock:
    def __init__(self, url: str, locks_dir: Path | None = None) -> None:
        from endoreview.paths import data_dir

        self.key = lock_key(url)
        self.shown = self.key.removeprefix("sqlite:")
        folder = locks_dir or data_dir() / "locks"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / (hashlib.sha256(self.key.encode()).hexdigest()[:24] + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise :class:`AlreadyOpenError`."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; the database's own locking still holds
            return self
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the life of the lock
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise AlreadyOpenError(
                f"EndoReview is already open on this database ({self.shown}) in {holder}. Switch to that window, "
                "or quit it first: two windows on one database would each undo and reap the other's work."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()  # closing the descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._file is not None
