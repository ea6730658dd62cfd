"""Database fixtures shared by the store and services tests: each test runs on SQLite and, when
``ENDOREVIEW_TEST_PG_URL`` is set, on PostgreSQL in a schema of its own (dropped afterwards).

With ``CI=true`` and no ``ENDOREVIEW_TEST_PG_URL`` the PostgreSQL variants *fail*, so they can never silently stop
running in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_ENV = "ENDOREVIEW_TEST_PG_URL"


def pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {PG_ENV} is not set: the PostgreSQL tests must run in CI")
        pytest.skip(f"{PG_ENV} not set (PostgreSQL tests run in CI; see .ci/run)")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema (dropped after the test)."""
    from sqlalchemy import create_engine, text

    base = pg_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:  # a cluster that is not running is a set-up failure, not a skip
        admin.dispose()
        pytest.fail(f"cannot reach PostgreSQL at {PG_ENV}: {e}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str):
    from endoreview.store import Store

    s = Store.open(db_url, reviewer="alice", host="ws-1")
    yield s
    s.close()
