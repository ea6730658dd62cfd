"""Issue 19 row 5: a damaged or emptied database is refused with a pointer to the newest backup, never written."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3

import numpy as np
import pytest

from endoreview.store import Store, errors
from endoreview.store.records import NewLabel
from tests.store.make_db_version import populate


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def good_db(tmp_path_factory):
    f = tmp_path_factory.mktemp("good") / "labels.sqlite3"
    with Store.open(str(f), reviewer="alice") as s:
        populate(s)
        v = s.list_videos()[0]
        s.add_labels(
            [NewLabel(v.id, "box", "polyp", frame=i % 20, bbox=(0, 0, 5 + i % 7, 5)) for i in range(400)]
        )
    con = sqlite3.connect(f)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return f


def test_every_overwritten_page_is_refused_or_harmless(good_db, tmp_path):
    page = 4096
    n_pages = good_db.stat().st_size // page
    rng = np.random.default_rng(0)
    opened_damaged = []
    refused = 0
    for k in range(n_pages):
        f = tmp_path / f"t{k}" / "labels.sqlite3"
        f.parent.mkdir()
        shutil.copy(good_db, f)
        with open(f, "r+b") as fh:
            fh.seek(k * page)
            fh.write(rng.integers(0, 256, page, dtype=np.uint8).tobytes())
        before = _digest(f)
        try:
            s = Store.open(str(f), reviewer="bob")
        except errors.DatabaseOpenError as e:
            refused += 1
            assert str(f) in str(e)
            assert _digest(f) == before, "a refused database was changed"
            continue
        s.close()
        con = sqlite3.connect(f)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        except sqlite3.DatabaseError:
            ok = False
        con.close()
        if not ok:
            opened_damaged.append(k)
    assert opened_damaged == [], f"opened damaged databases (pages {opened_damaged} of {n_pages})"
    assert refused >= n_pages // 2


def test_damaged_database_message_names_the_newest_backup(good_db, tmp_path):
    f = tmp_path / "labels.sqlite3"
    shutil.copy(good_db, f)
    old = tmp_path / "labels.backup-0001-20260101T000000Z.sqlite3"
    new = tmp_path / "labels.backup-0002-20260301T000000Z.sqlite3"
    for b, t in ((old, 1_700_000_000), (new, 1_750_000_000)):
        shutil.copy(good_db, b)
        os.utime(b, (t, t))
    with open(f, "r+b") as fh:
        fh.seek(2 * 4096)
        fh.write(b"\xff" * 4096)
    before = _digest(f)
    with pytest.raises(errors.DamagedDatabaseError) as e:
        Store.open(str(f))
    assert str(new) in str(e.value) and "damaged" in str(e.value)
    assert _digest(f) == before


def test_empty_database_file_is_refused_not_started_afresh(tmp_path):
    f = tmp_path / "labels.sqlite3"
    f.write_bytes(b"")
    with pytest.raises(errors.DamagedDatabaseError) as e:
        Store.open(str(f))
    assert "empty" in str(e.value) and "No backup" in str(e.value)
    assert f.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["labels.sqlite3"]
