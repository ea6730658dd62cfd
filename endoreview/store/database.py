"""Opening the label database safely: checks first, then a backup, then an upgrade, then the engine.

SQLite (the default, one file in the user data directory):

* refused on a network file system (NFS, SMB/CIFS, sshfs …; read from ``/proc/mounts``) — SQLite's locking is
  not reliable there; the message suggests PostgreSQL;
* a file that is not an EndoReview database (not SQLite, corrupt, another program's tables), a read-only file or
  folder, or a database from a newer EndoReview is refused with a :class:`DatabaseOpenError` subclass naming the
  file and the reason, and the file is not touched;
* a damaged database (``PRAGMA integrity_check``, or ``quick_check`` above :data:`FULL_CHECK_BYTES`, 32 MB) and an empty
  (0-byte) file where a database was expected are refused with a :class:`DamagedDatabaseError` that names the newest
  backup beside it, and nothing is written to them (an empty file is what a failed copy leaves; silently starting
  an empty library on it would hide every label);
* an older schema is first copied (SQLite backup API) to ``<name>.backup-<revision>-<UTC time>.sqlite3`` beside
  it, then upgraded in one transaction;
* every connection runs ``journal_mode=WAL``, ``synchronous=FULL``, ``foreign_keys=ON`` and a busy timeout; write
  transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing.

PostgreSQL (``postgresql+psycopg://user:pass@host/db``, for a team sharing one database): same version checks; an
older schema is upgraded inside one transaction (PostgreSQL DDL is transactional, so a failed upgrade leaves the
database as it was; take a ``pg_dump`` before upgrading a team server — the log says so).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from core_model.atomic import fsync_dir
from endoreview.store import migrate
from endoreview.store.errors import (
    DamagedDatabaseError,
    DatabaseOpenError,
    DiskFullError,
    NetworkFilesystemError,
    NewerDatabaseError,
    NotADatabaseError,
    ReadOnlyDatabaseError,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
SQLITE_PRAGMAS: dict[str, Any] = {
    "journal_mode": "WAL",
    "synchronous": "FULL",
    "foreign_keys": "ON",
    "busy_timeout": BUSY_TIMEOUT_MS,
}
NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "sshfs",
        "fuse.sshfs",
        "afs",
        "9p",
        "ncpfs",
        "coda",
        "davfs",
        "fuse.davfs2",
        "glusterfs",
        "fuse.glusterfs",
        "ceph",
        "fuse.ceph",
        "lustre",
        "gfs2",
        "ocfs2",
        "fuse.rclone",
        "fuse.s3fs",
    }
)
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Databases up to this size get the full ``integrity_check`` at open (about 1 s per 100 MB here); larger ones the
#: Databases up to this size get the full ``integrity_check`` at open; larger ones the structural ``quick_check``
#: (measured here on an 87 MB database: 1.5 s vs 0.15 s; quick_check alone also refused every overwritten page of
#: tests/store/test_damaged.py).
FULL_CHECK_BYTES = 32 << 20


def describe_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases and other dialects)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).expanduser().resolve()


def filesystem_type(path: Path, mounts_file: str | Path = "/proc/mounts") -> str | None:
    """The file-system type of the mount holding ``path`` (None when ``mounts_file`` is not readable)."""
    try:
        text = Path(mounts_file).read_text()
    except OSError:
        return None
    best, best_type = "", None
    target = str(path)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        prefix = mount_point.rstrip("/") + "/"
        if (target == mount_point or target.startswith(prefix) or mount_point == "/") and len(
            mount_point
        ) >= len(best):
            best, best_type = mount_point, parts[2]
    return best_type


def _writable(p: Path) -> bool:
    """Writable by us *and* not marked read-only in its permission bits (which even root respects here)."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return os.access(p, os.W_OK) and bool(mode & 0o222)


def check_sqlite_file(path: Path, mounts_file: str | Path = "/proc/mounts") -> str | None:
    """Check a SQLite database file before anything opens it for writing; never changes it.

    Returns its schema revision (None for a new or empty database). Raises a :class:`DatabaseOpenError` subclass.
    """
    shown = str(path)
    fs = filesystem_type(path.parent if not path.exists() else path, mounts_file)
    if fs is not None and (fs in NETWORK_FS_TYPES or fs.split(".")[-1] in NETWORK_FS_TYPES):
        raise NetworkFilesystemError(
            shown,
            f"it is on a network file system ({fs}); SQLite cannot share a database safely over the network. "
            "Keep the database on a local disk, or use a PostgreSQL server for a team "
            "(--db postgresql+psycopg://user:password@server/endoreview).",
        )
    if path.is_dir():
        raise NotADatabaseError(shown, "it is a folder, not a database file")
    if path.exists() and path.stat().st_size == 0:
        raise DamagedDatabaseError(
            shown,
            "the file is empty (0 bytes), as a failed copy leaves it; it was not opened or changed. "
            + restore_advice(path)
            + " To start a new, empty library instead, delete the empty file.",
        )
    if not path.exists():
        folder = path.parent
        if not folder.exists():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ReadOnlyDatabaseError(shown, f"its folder cannot be created ({e.strerror})") from e
        if not _writable(folder):
            raise ReadOnlyDatabaseError(
                shown, f"the folder {folder} is read-only; choose a writable location"
            )
        if path.exists() and not _writable(path):
            raise ReadOnlyDatabaseError(shown, "the file is read-only")
        return None
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise NotADatabaseError(shown, f"it cannot be read ({e.strerror})") from e
    if header != SQLITE_MAGIC:
        raise NotADatabaseError(
            shown, "it is not a SQLite database (wrong file header); the file was left as it was"
        )
    if not _writable(path):
        raise ReadOnlyDatabaseError(shown, "the file is read-only; EndoReview needs to save labels into it")
    if not _writable(path.parent):
        raise ReadOnlyDatabaseError(
            shown, f"its folder {path.parent} is read-only (SQLite needs to write its journal beside it)"
        )
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "alembic_version" not in names:
                if names:
                    raise NotADatabaseError(
                        shown,
                        "it is a SQLite file of another program (no EndoReview schema); it was left as it was",
                    )
                return None
            check = "integrity_check" if path.stat().st_size <= FULL_CHECK_BYTES else "quick_check"
            problems = [r[0] for r in con.execute(f"PRAGMA {check}(5)")]
            if problems != ["ok"]:
                raise DamagedDatabaseError(
                    shown,
                    f"it is damaged ({check}: {'; '.join(problems)[:300]}); it was not opened or changed. "
                    + restore_advice(path),
                )
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            return row[0] if row else None
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise DamagedDatabaseError(
            shown, f"it is damaged or not a database ({e}); it was left as it was. " + restore_advice(path)
        ) from e


def backups_of(path: Path, backup_dir: Path | None = None) -> list[Path]:
    """The backups :func:`backup_sqlite` wrote of ``path``, newest first."""
    found: set[Path] = set()
    for d in {path.parent, *([backup_dir] if backup_dir else [])}:
        try:
            found.update(
                x for x in d.glob(f"{path.stem}.backup-*.sqlite3") if x.is_file() and x.stat().st_size
            )
        except OSError:
            continue
    return sorted(found, key=lambda x: x.stat().st_mtime, reverse=True)


def restore_advice(path: Path) -> str:
    """What to do about a damaged database: the newest backup to restore, or that none was found."""
    backups = backups_of(path)
    if backups:
        return (
            f"The newest backup is {backups[0]}: close EndoReview, keep the damaged file for inspection, and copy "
            f"the backup to {path}."
        )
    return f"No backup was found beside it; restore {path.name} from your own backups."


def check_revision(shown: str, revision: str | None) -> bool:
    """True when ``revision`` is older than this version's head (an upgrade is needed)."""
    head = migrate.head_revision()
    if revision is None or revision == head:
        return revision is None
    known = migrate.known_revisions()
    if revision not in known:
        raise NewerDatabaseError(
            shown,
            f"it was written by a newer version of EndoReview (schema {revision}; this version knows up to "
            f"{head}). Update EndoReview to open it; the database was left as it was.",
        )
    return True


def create_private_sqlite(path: Path) -> None:
    """Create an empty WAL database at ``path`` readable by this user only (0600; SQLite gives its ``-wal`` and
    ``-shm`` files the same permissions). Built under a temporary name and moved into place, so a crash never leaves
    an empty file where the database should be."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".new", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # writes the header; the WAL mode is kept in the file
        finally:
            con.close()
        for suffix in ("-wal", "-shm"):
            Path(tmp + suffix).unlink(missing_ok=True)
        try:
            os.link(tmp, path)  # never replaces a database that appeared meanwhile
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system
            if not path.exists():
                os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if os.name == "posix" and path.parent.exists():
        fsync_dir(path.parent)


def backup_sqlite(path: Path, revision: str, backup_dir: Path | None = None) -> Path:
    """Copy the database (consistently, via the SQLite backup API) before an upgrade."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = (backup_dir or path.parent) / f"{path.stem}.backup-{revision}-{stamp}.sqlite3"
    src = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        os.close(
            os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        )  # the copy is as private as a new db
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.OperationalError as e:
        dest.unlink(missing_ok=True)
        if "full" in str(e):
            raise DiskFullError(
                f"No space left to back up {path} before upgrading it; nothing was changed"
            ) from e
        raise DatabaseOpenError(
            str(path), f"the backup before upgrading failed ({e}); nothing was changed"
        ) from e
    finally:
        src.close()
    log.info("backed up the database (schema %s) to %s before upgrading", revision, dest)
    return dest


def _install_sqlite_hooks(engine: Engine, pragmas: Mapping[str, Any]) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        for name, value in pragmas.items():
            cur.execute(f"PRAGMA {name}={value}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("immediate", False) else "BEGIN")


def create_store_engine(
    url: str | URL, *, sqlite_pragmas: Mapping[str, Any] | None = None, echo: bool = False
) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        pragmas = {**SQLITE_PRAGMAS, **(sqlite_pragmas or {})}
        engine = create_engine(
            u, echo=echo, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        _install_sqlite_hooks(engine, pragmas)
        return engine
    if u.get_backend_name() == "postgresql":
        return create_engine(u, echo=echo, pool_pre_ping=True)
    raise DatabaseOpenError(
        describe_url(u), "only SQLite files and PostgreSQL (postgresql+psycopg://…) are supported"
    )


def open_engine(
    url: str | URL,
    *,
    sqlite_pragmas: Mapping[str, Any] | None = None,
    backup_dir: Path | None = None,
    mounts_file: str | Path = "/proc/mounts",
) -> Engine:
    """Check, back up, upgrade and return an engine on the database at ``url`` (see the module docstring)."""
    shown = describe_url(url)
    path = sqlite_path(url)
    if path is not None:
        revision = check_sqlite_file(path, mounts_file)
        if check_revision(str(path), revision) and revision is not None:
            backup_sqlite(path, revision, backup_dir)
        if not path.exists():
            create_private_sqlite(path)
    engine = create_store_engine(url, sqlite_pragmas=sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.info["immediate"] = True
            with conn.begin():
                revision = migrate.current_revision(conn)
                if path is None and revision is None and _has_foreign_tables(conn):
                    raise NotADatabaseError(
                        shown, "it holds tables of another program (no EndoReview schema)"
                    )
                if check_revision(shown, revision):
                    if revision is not None:
                        log.warning(
                            "upgrading %s from schema %s (take a backup of team servers first)",
                            shown,
                            revision,
                        )
                    migrate.upgrade(conn)
    except DatabaseOpenError:
        engine.dispose()
        raise
    except OperationalError as e:
        engine.dispose()
        msg = str(e.orig)
        if "full" in msg:
            raise DiskFullError(f"The disk holding {shown} is full; the database was not changed") from e
        if "readonly" in msg or "read-only" in msg:
            raise ReadOnlyDatabaseError(shown, "it cannot be written (read-only)") from e
        raise DatabaseOpenError(
            shown, msg.strip().splitlines()[0] if msg.strip() else type(e.orig).__name__
        ) from e
    except DBAPIError as e:
        engine.dispose()
        raise NotADatabaseError(shown, str(e.orig).strip().splitlines()[0]) from e
    return engine


def _has_foreign_tables(conn: Any) -> bool:
    return bool(inspect(conn).get_table_names())
