"""The :class:`Store`: the one object through which EndoReview reads and writes its database."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from endoreview.store.annotations import AnnotationsMixin
from endoreview.store.catalog import CatalogMixin
from endoreview.store.database import open_engine
from endoreview.store.history import HistoryMixin

log = logging.getLogger(__name__)


class Store(AnnotationsMixin, HistoryMixin, CatalogMixin):
    """Label database access. Open with :meth:`Store.open`; every method is one unit of work.

    * ``reviewer``: who makes the changes (default: the operating-system login); ``host``: this workstation.
    * Rows come out as frozen dataclasses from :mod:`endoreview.store.records`.
    * Errors are :class:`endoreview.store.errors.StoreError` subclasses with messages meant for the user.
    * Editable rows (projects, videos, labels) carry a ``version``; pass the version you read as
      ``expected_version`` and a concurrent change is refused (``StaleWriteError``: "changed by X at T — reload").
    * Thread-safe: each call checks a connection out of the engine's pool.
    """

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        reviewer: str | None = None,
        host: str | None = None,
        sqlite_pragmas: Mapping[str, Any] | None = None,
        backup_dir: Path | None = None,
        mounts_file: str | Path = "/proc/mounts",
    ) -> Store:
        """Open (creating, or backing up and upgrading) the database at ``url``.

        ``url`` defaults to :func:`endoreview.paths.default_db_url` (a SQLite file in the user data directory,
        or ``$ENDOREVIEW_DB_URL``). A plain file path is accepted for SQLite.
        """
        if url is None:
            from endoreview.paths import default_db_url

            url = default_db_url()
        elif "://" not in url:
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        engine = open_engine(
            url, sqlite_pragmas=sqlite_pragmas, backup_dir=backup_dir, mounts_file=mounts_file
        )
        store = cls(engine, reviewer=reviewer, host=host, sqlite_pragmas=sqlite_pragmas)
        log.info("opened label database %s as %s@%s", store.url, store.reviewer, store.host)
        return store
