"""Errors the store raises. Every message is meant to be shown to a user as it is.

All derive from :class:`StoreError`; the UI catches that one type, shows ``str(error)`` and carries on.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import datetime


class StoreError(Exception):
    """A database action failed; nothing of that action was saved (the transaction was rolled back)."""


class DatabaseOpenError(StoreError):
    """The database could not be opened. ``path`` names the file (or URL) and ``reason`` says why."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot open the label database {path}: {reason}")


class NotADatabaseError(DatabaseOpenError):
    """The file is not an EndoReview database (not SQLite, corrupt, or another program's database)."""


class DamagedDatabaseError(NotADatabaseError):
    """The database file is damaged or empty; it was neither opened nor written, and the message names a backup."""


class NewerDatabaseError(DatabaseOpenError):
    """The database was written by a newer EndoReview; this version refuses to touch it."""


class NetworkFilesystemError(DatabaseOpenError):
    """SQLite on a network file system can lose edits; PostgreSQL is the supported way to share."""


class ReadOnlyDatabaseError(DatabaseOpenError):
    """The database file or its folder cannot be written."""


class DiskFullError(StoreError):
    """The disk holding the database is full; the action was rolled back."""


class NotFoundError(StoreError):
    """A row the caller asked for does not exist (or was removed)."""


class StaleWriteError(StoreError):
    """Someone else changed the row since it was read; the write was refused (optimistic row versions)."""

    def __init__(self, what: str, changed_by: str | None, changed_at: datetime | None):
        self.what = what
        self.changed_by = changed_by
        self.changed_at = changed_at
        when = changed_at.strftime("%Y-%m-%d %H:%M:%S") if changed_at else "an unknown time"
        super().__init__(f"{what} was changed by {changed_by or 'someone else'} at {when} — reload")


class InvalidInputError(StoreError, ValueError):
    """The caller passed something that cannot be stored (bad state, empty segment, malformed mask …)."""


def refuse_unknown(changes: Iterable[str], allowed: Set[str], what: str, verb: str = "change") -> None:
    """Refuse (:class:`InvalidInputError`) a change to fields of ``what`` (``"a video"``) outside ``allowed``."""
    bad = set(changes) - allowed
    if bad:
        raise InvalidInputError(f"cannot {verb} {sorted(bad)} of {what}")
