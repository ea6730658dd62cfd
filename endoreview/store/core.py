"""The store's machinery: units of work, retries, error translation and the audit trail.

Every public write of :class:`endoreview.store.Store` is one call to :meth:`StoreBase._write`: it opens a
transaction (``BEGIN IMMEDIATE`` on SQLite), runs the change, appends one *change set* (who, host, when, what)
plus one audit entry per changed row (before/after as JSON), and commits. Any error rolls everything back and
comes out as a :class:`~endoreview.store.errors.StoreError` with a message a user can read. "database is locked"
(another process holds the write lock past the busy timeout) and PostgreSQL serialisation failures are retried
with exponential backoff here, so they never reach the user unless the database stays busy for minutes.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: writers queue on SQLite's lock alone
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from endoreview.store import convert
from endoreview.store import schema as s
from endoreview.store.database import BUSY_TIMEOUT_MS, SQLITE_PRAGMAS, describe_url, sqlite_path
from endoreview.store.errors import (
    DiskFullError,
    InvalidInputError,
    NotADatabaseError,
    NotFoundError,
    ReadOnlyDatabaseError,
    StaleWriteError,
    StoreError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 120.0  # how long a busy database is retried before the user hears about it
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def default_reviewer() -> str:
    """The operating-system login (the app never blocks start-up to ask for a name)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still never block
        return "unknown"


def _is_busy(e: DBAPIError) -> bool:
    msg = str(e.orig).lower()
    if "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg:
        return True
    return getattr(e.orig, "sqlstate", None) in _RETRY_SQLSTATES


class Tx:
    """One unit of work. Changes made through it are audited in one change set."""

    def __init__(
        self, store: StoreBase, session: Session, summary: str, video_id: int | None, undoes_id: int | None
    ):
        self.store = store
        self.session = session
        self.summary = summary
        self.video_id = video_id
        self.undoes_id = undoes_id
        self._change_set_id: int | None = None
        self.now = s.utcnow()

    @property
    def actor(self) -> str:
        return self.store.reviewer

    def change_set_id(self) -> int:
        """The id of this action's change set, created on first use (a Core insert: cheap, no flush)."""
        if self._change_set_id is None:
            result = self.session.execute(
                insert(s.ChangeSetRow).values(
                    actor=self.actor,
                    host=self.store.host,
                    at=self.now,
                    summary=self.summary,
                    video_id=self.video_id,
                    undoes_id=self.undoes_id,
                )
            )
            self._change_set_id = int(result.inserted_primary_key[0])
        return self._change_set_id

    def audit(self, table: str, row_id: int, op: str, before: dict | None, after: dict | None) -> None:
        self.session.execute(
            insert(s.AuditRow).values(
                change_set_id=self.change_set_id(),
                table_name=table,
                row_id=row_id,
                op=op,
                before=before,
                after=after,
            )
        )

    def add(self, row: Any) -> Any:
        if hasattr(row, "updated_by"):
            row.updated_by, row.updated_at = self.actor, self.now
        self.session.add(row)
        self.session.flush()
        if self.video_id is None and row.__tablename__ == "videos":
            self.video_id = row.id  # so the change set of an import names its video
        self.audit(row.__tablename__, row.id, "insert", None, convert.row_dict(row))
        return row

    def insert_many(self, model: type, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert many rows with a few multi-row statements (not one ORM flush each) and audit each one; returns
        the new ids in the order of ``rows``."""
        if not rows:
            return []
        table = model.__table__
        ids: list[int] = []
        for a in range(0, len(rows), 500):
            part = rows[a : a + 500]
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids += [int(i) for (i,) in self.session.execute(stmt, list(part))]
        cols = [c.key for c in table.columns]
        cs = self.change_set_id()
        audit_rows = [
            {
                "change_set_id": cs,
                "table_name": table.name,
                "row_id": row_id,
                "op": "insert",
                "before": None,
                "after": {k: _jsonable(row_id if k == "id" else values.get(k)) for k in cols},
            }
            for row_id, values in zip(ids, rows)
        ]
        for a in range(0, len(audit_rows), 500):
            self.session.execute(insert(s.AuditRow), audit_rows[a : a + 500])
        return ids

    def update(self, row: Any, expected_version: int | None, what: str, **changes: Any) -> Any:
        """Apply ``changes``; refuse if the row's version is not ``expected_version`` (None: no check)."""
        if expected_version is not None and row.version != expected_version:
            raise StaleWriteError(what, row.updated_by, row.updated_at)
        before = convert.row_dict(row)
        for k, v in changes.items():
            setattr(row, k, v)
        if hasattr(row, "updated_by"):
            row.updated_by, row.updated_at = self.actor, self.now
        self.session.flush()
        self.audit(row.__tablename__, row.id, "update", before, convert.row_dict(row))
        return row

    def delete(self, row: Any) -> None:
        self.audit(row.__tablename__, row.id, "delete", convert.row_dict(row), None)
        self.session.delete(row)
        self.session.flush()

    def row(self, model: type, row_id: int, what: str) -> dict[str, Any]:
        """One row as a dict of column values (Core select; raises NotFoundError)."""
        t = model.__table__
        found = self.session.execute(select(t).where(t.c.id == row_id)).mappings().first()
        if found is None:
            raise NotFoundError(f"{what} {row_id} does not exist")
        return dict(found)

    def update_row(
        self,
        model: type,
        cur: dict[str, Any],
        expected_version: int | None,
        what: str,
        changes: dict[str, Any],
    ) -> dict[str, Any]:
        """Update one versioned row read with :meth:`row` (Core ``UPDATE … WHERE version = …``), audited with
        the whole row before and after; returns the row after."""
        if expected_version is not None and cur["version"] != expected_version:
            raise StaleWriteError(what, cur["updated_by"], cur["updated_at"])
        t = model.__table__
        values = {**changes, "version": cur["version"] + 1, "updated_by": self.actor, "updated_at": self.now}
        result = self.session.execute(
            t.update().where(t.c.id == cur["id"], t.c.version == cur["version"]).values(values)
        )
        if result.rowcount != 1:
            raise StaleWriteError(what, None, None)  # changed between our read and our write
        after = {**cur, **values}
        before_json = {k: _jsonable(v) for k, v in cur.items()}
        self.audit(t.name, cur["id"], "update", before_json, {k: _jsonable(v) for k, v in after.items()})
        return after

    def bulk_update(
        self, model: type, items: Sequence[tuple[int, int | None, dict[str, Any]]], what: str
    ) -> int:
        """Update many rows of an editable table fast (Core ``executemany``), each audited with the changed
        columns before/after. ``items``: ``(row id, expected version or None, changes)``. Every row must exist
        and match its expected version, else nothing is changed (:class:`StaleWriteError`)."""
        if not items:
            return 0
        table = model.__table__
        keys = sorted({k for _, _, ch in items for k in ch})
        cols = [
            table.c.id,
            table.c.version,
            table.c.updated_by,
            table.c.updated_at,
            *(table.c[k] for k in keys),
        ]
        current: dict[int, Any] = {}
        ids = [i for i, _, _ in items]
        for a in range(0, len(ids), 500):
            for row in self.session.execute(select(*cols).where(table.c.id.in_(ids[a : a + 500]))):
                current[row.id] = row
        audit_rows = []
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row_id, expected, changes in items:
            cur = current.get(row_id)
            if cur is None:
                raise StaleWriteError(f"{what} {row_id} (removed)", None, None)
            if expected is not None and cur.version != expected:
                raise StaleWriteError(what, cur.updated_by, cur.updated_at)
            group = tuple(sorted(changes))
            groups.setdefault(group, []).append(
                {**{f"n_{k}": v for k, v in changes.items()}, "b_id": row_id, "b_version": cur.version}
            )
            before = {k: _jsonable(getattr(cur, k)) for k in group} | {"version": cur.version}
            after = {k: _jsonable(v) for k, v in changes.items()} | {"version": cur.version + 1}
            audit_rows.append(
                {"table_name": table.name, "row_id": row_id, "op": "update", "before": before, "after": after}
            )
        for group, params in groups.items():
            stmt = (
                table.update()
                .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
                .values(
                    {
                        **{k: bindparam(f"n_{k}") for k in group},
                        "version": table.c.version + 1,
                        "updated_by": self.actor,
                        "updated_at": self.now,
                    }
                )
            )
            if self.session.execute(stmt, params).rowcount not in (len(params), -1):
                raise StaleWriteError(what, None, None)  # changed between our read and our write
        cs = self.change_set_id()
        for a in audit_rows:
            a["change_set_id"] = cs
        self.session.execute(insert(s.AuditRow), audit_rows)
        return len(items)


class StoreBase:
    """Engine, identity (reviewer + host) and the unit-of-work helpers shared by every part of the store."""

    def __init__(
        self,
        engine: Engine,
        *,
        reviewer: str | None = None,
        host: str | None = None,
        sqlite_pragmas: Mapping[str, Any] | None = None,
    ):
        self.engine = engine
        self._pragmas = {**SQLITE_PRAGMAS, **(sqlite_pragmas or {})}
        self.reviewer = reviewer or default_reviewer()
        self.host = host or socket.gethostname()
        self.dialect = engine.dialect.name
        self.url = describe_url(engine.url)
        self.path = sqlite_path(engine.url)
        self._local = threading.local()
        self._raw_lock = threading.Lock()
        self._raw_cons: list[Any] = []

    def last_change_id(self) -> int | None:
        """The change set written by this thread's last successful write (None if it changed nothing audited).

        Services use it to remember a user action for undo."""
        return getattr(self._local, "last_change_id", None)

    def raw_url(self) -> str:
        """The database URL including any password (for handing to a job subprocess via its environment)."""
        return self.engine.url.render_as_string(hide_password=False)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._raw_lock:
            for con in self._raw_cons:
                try:
                    con.close()
                except Exception:  # closing at shutdown: nothing left to protect
                    log.debug("closing a read connection failed", exc_info=True)
            self._raw_cons.clear()
        fd = getattr(self, "_gate_fd", None)
        if fd is not None and fd >= 0:
            os.close(fd)
        self._gate_fd = None
        self._local = threading.local()
        self.engine.dispose()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ units of work
    # ------------------------------------------------------------------ writer fairness (SQLite)
    def _gate_file(self) -> Any:
        """The per-database gate file (``<db>-gate``) interactive and bulk writers coordinate through; None when
        not SQLite on disk or it cannot be opened (then writers simply queue on SQLite's lock)."""
        fd = getattr(self, "_gate_fd", None)
        if fd is None and self.path is not None and fcntl is not None:
            try:
                fd = os.open(f"{self.path}-gate", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                fd = -1
            self._gate_fd = fd
        return fd if fd is not None and fd >= 0 else None

    @contextmanager
    def _writer_turn(self, bulk: bool) -> Iterator[None]:
        """SQLite has one write lock and no queue: a job committing batches back to back can win it again and
        again while a reviewer's save waits (saves took seconds). So writers also pass a gate: an interactive write
        holds it shared from before it asks for the lock until it commits; a bulk write (a job's batch) passes it
        exclusively before each transaction. While any reviewer's save is waiting or writing, the job cannot start
        another transaction: a save waits at most for the one job transaction already running. (Holding the gate
        exclusively through the job's transaction was measured too: no better here, and a job could then barge
        back in before a woken save ran.)"""
        fd = self._gate_file()
        if fd is None:
            yield
            return
        if bulk:
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
            yield
            return
        depth = getattr(self._local, "gate_depth", 0)
        if depth == 0:
            fcntl.flock(fd, fcntl.LOCK_SH)
        self._local.gate_depth = depth + 1
        try:
            yield
        finally:
            self._local.gate_depth = depth
            if depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _write(
        self,
        summary: str,
        fn: Callable[[Tx], T],
        *,
        video_id: int | None = None,
        undoes_id: int | None = None,
        bulk: bool = False,
    ) -> T:
        """Run ``fn`` in one write transaction (retried whole when the database is busy). ``bulk``: a job's batch
        write, which gives way to interactive writes between transactions (see :meth:`_writer_turn`)."""
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.02
        while True:
            try:
                with self._writer_turn(bulk), self._translate(summary), self.engine.connect() as conn:
                    conn.info["immediate"] = True
                    with conn.begin(), Session(bind=conn, expire_on_commit=False, autoflush=False) as session:
                        tx = Tx(self, session, summary, video_id, undoes_id)
                        result = fn(tx)
                        session.flush()
                self._local.last_change_id = tx._change_set_id
                return result
            except _Busy as busy:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{summary} failed: the database stayed busy for {RETRY_SECONDS:.0f} s "
                        "(another program is writing); nothing was saved — try again"
                    ) from busy.__cause__
                log.debug("database busy during %r; retrying in %.2f s", summary, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Hot read paths (frame lookup, timeline): plain SQL with ``?`` placeholders.

        On SQLite it runs on this thread's own long-lived DBAPI connection (same pragmas, autocommit reads, so
        each statement sees every committed write) without SQLAlchemy's per-statement overhead; elsewhere it goes
        through a pooled SQLAlchemy connection.
        """
        if self.dialect != "sqlite" or self.path is None:
            with self._read_conn() as conn:
                sql = sql.replace("?", "%s") if self.dialect != "sqlite" else sql
                return [tuple(r) for r in conn.exec_driver_sql(sql, params)]
        con = getattr(self._local, "raw", None)
        if con is None:  # outside the engine's pool, so reader threads never starve writers of connections
            con = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            for name, value in self._pragmas.items():
                con.execute(f"PRAGMA {name}={value}")
            with self._raw_lock:
                self._raw_cons.append(con)
            self._local.raw = con
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                cur = con.cursor()
                try:
                    return cur.execute(sql, params).fetchall()
                finally:
                    cur.close()
            except sqlite3.OperationalError as e:
                if "locked" in str(e) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise StoreError(f"reading the database failed: {e}") from e
            except sqlite3.DatabaseError as e:
                raise NotADatabaseError(self.url, f"it is damaged ({e})") from e

    @contextmanager
    def _read_conn(self) -> Iterator[Connection]:
        with self._translate("reading"), self.engine.connect() as conn:
            yield conn

    def _read(self, fn: Callable[[Session], T]) -> T:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                with self._read_conn() as conn, Session(bind=conn) as session:
                    return fn(session)
            except _Busy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _translate(self, summary: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except StaleDataError as e:
            raise StaleWriteError(f"{summary}: the row", None, None) from e
        except IntegrityError as e:
            raise InvalidInputError(f"{summary} refused: {_first_line(e.orig)}") from e
        except OperationalError as e:
            if _is_busy(e):
                raise _Busy() from e
            msg = str(e.orig).lower()
            if "full" in msg:
                raise DiskFullError(
                    f"{summary} failed: the disk holding the database ({self.url}) is full. Nothing was saved "
                    "for this action; free some space and try again"
                ) from e
            if "readonly" in msg or "read-only" in msg:
                raise ReadOnlyDatabaseError(self.url, "it has become read-only; nothing was saved") from e
            if "malformed" in msg or "not a database" in msg:
                raise NotADatabaseError(self.url, f"it is damaged ({_first_line(e.orig)})") from e
            raise StoreError(f"{summary} failed: {_first_line(e.orig)}; nothing was saved") from e
        except DBAPIError as e:
            if _is_busy(e):
                raise _Busy() from e
            raise StoreError(f"{summary} failed: {_first_line(e.orig)}; nothing was saved") from e
        except StatementError as e:
            raise InvalidInputError(f"{summary} refused: {_first_line(e.orig)}") from e
        except OverflowError as e:  # a Python int beyond SQLite's 64 bits
            raise InvalidInputError(f"{summary} refused: a number is too large for the database ({e})") from e
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFullError(
                    f"{summary} failed: no space left on the disk holding {self.url}; nothing was saved"
                ) from e
            raise StoreError(f"{summary} failed: {e}; nothing was saved") from e

    # ------------------------------------------------------------------ diagnostics
    def pragmas(self) -> dict[str, Any]:
        """The SQLite settings in force on a store connection (empty on PostgreSQL)."""
        if self.dialect != "sqlite":
            return {}
        with self._read_conn() as conn:
            return {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }

    def integrity_check(self) -> str:
        """``ok`` when SQLite's full integrity check passes (PostgreSQL: always ``ok``)."""
        if self.dialect != "sqlite":
            return "ok"
        with self._read_conn() as conn:
            return "; ".join(r[0] for r in conn.execute(text("PRAGMA integrity_check")))


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


class _Busy(Exception):
    """Internal: the database was busy; the unit of work is retried."""


def _first_line(e: BaseException | None) -> str:
    text_ = str(e).strip()
    return text_.splitlines()[0] if text_ else type(e).__name__
