"""Schema versions: which revision a database is at, and upgrading it (Alembic, run programmatically).

No ``alembic.ini`` is needed: the script location is this package's ``migrations`` folder.

Opening a database that is already at the head needs neither Alembic nor Mako (about 0.3 s of CPU on the app's
start-up path): the revision chain is read from the version files' ``revision`` / ``down_revision`` lines and a
SQLite database's revision with one query. Alembic is imported when an upgrade runs, for a database on another
engine, or where the version files are not one straight chain.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_REVISION = re.compile(r"""^revision\s*(?::[^=\n]*)?=\s*["']([^"'\n]+)["']\s*$""", re.M)
_DOWN = re.compile(r"""^down_revision\s*(?::[^=\n]*)?=\s*(?:None|["']([^"'\n]+)["'])\s*$""", re.M)


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


@lru_cache(maxsize=1)
def _chain() -> tuple[str, ...] | None:
    """The revisions oldest first as the version files declare them, or None where they are not one straight chain
    (a branch, a merge, a line this reader does not understand): then Alembic decides."""
    parents: dict[str, str | None] = {}
    for f in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = f.read_text(encoding="utf-8")
        rev, down = _REVISION.findall(text), _DOWN.findall(text)
        if not rev and not down:
            continue  # __init__.py and helpers
        if len(rev) != 1 or len(down) != 1 or rev[0] in parents:
            return None
        parents[rev[0]] = down[0] or None
    children: dict[str | None, str] = {}
    for rev, down in parents.items():
        if down in children:
            return None  # a branch
        children[down] = rev
    order, cur = [], children.get(None)
    while cur is not None:
        order.append(cur)
        cur = children.get(cur)
    return tuple(order) if order and len(order) == len(parents) else None


def head_revision() -> str:
    chain = _chain()
    if chain:
        return chain[-1]
    head = script_directory().get_current_head()
    assert head is not None, "no migrations found"
    return head


def known_revisions() -> list[str]:
    """Every revision this version of EndoReview knows, oldest first."""
    chain = _chain()
    if chain:
        return list(chain)
    return [s.revision for s in reversed(list(script_directory().walk_revisions()))]


def current_revision(connection: Connection) -> str | None:
    if connection.dialect.name == "sqlite":
        known = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).first()
        if known is None:
            return None
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
        if len(rows) <= 1:
            return rows[0][0] if rows else None
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, target: str = "head") -> None:
    """Upgrade in the caller's transaction (PostgreSQL DDL is transactional; SQLite gets a backup first)."""
    from alembic import command

    command.upgrade(alembic_config(connection), target)
