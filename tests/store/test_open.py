"""Opening the database: pragmas, refusals of bad input (file left unchanged), backups and upgrades."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from endoreview.store import Store, errors, migrate
from endoreview.store.records import NewLabel
from tests.store.make_db_version import DATA, PROVENANCE, populate


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def dump(p: Path) -> list[str]:
    con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_default_database_lives_in_the_user_data_dir_with_safe_pragmas(_isolated_data_dir):
    with Store.open() as s:
        assert s.path == (_isolated_data_dir / "endoreview.sqlite3").resolve()
        assert s.pragmas() == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 30000,
        }
        assert s.integrity_check() == "ok"
        with sqlite3.connect(s.path) as con:
            assert (
                con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
                == migrate.head_revision()
            )


def test_reviewer_defaults_to_the_os_login(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "dr_login")
    monkeypatch.setenv("LOGNAME", "dr_login")
    with Store.open(str(tmp_path / "db.sqlite3")) as s:
        s.ensure_reviewer()
        assert s.reviewer == "dr_login"
        assert [r.name for r in s.list_reviewers()] == ["dr_login"]
        assert s.changes_since(0)[-1].actor == "dr_login"


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"hello, this is a text file\n" * 10, "not a SQLite database"),
        (b"SQLite format 3\x00" + b"\x13" * 4000, "damaged or not a database"),
    ],
)
def test_non_database_file_is_refused_and_left_unchanged(tmp_path, content, reason):
    f = tmp_path / "labels.sqlite3"
    f.write_bytes(content)
    before = digest(f)
    with pytest.raises(errors.NotADatabaseError) as e:
        Store.open(str(f))
    assert str(f) in str(e.value) and reason in str(e.value)
    assert digest(f) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.sqlite3"]


def test_another_programs_sqlite_database_is_refused(tmp_path):
    f = tmp_path / "other.db"
    with sqlite3.connect(f) as con:
        con.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
    before = digest(f)
    with pytest.raises(errors.NotADatabaseError, match="another program"):
        Store.open(str(f))
    assert digest(f) == before


def test_read_only_file_and_folder_are_refused(tmp_path):
    f = tmp_path / "ro" / "labels.sqlite3"
    f.parent.mkdir()
    Store.open(str(f)).close()
    before = digest(f)
    os.chmod(f, 0o444)
    try:
        with pytest.raises(errors.ReadOnlyDatabaseError, match="read-only"):
            Store.open(str(f))
    finally:
        os.chmod(f, 0o644)
    assert digest(f) == before
    os.chmod(f.parent, 0o555)
    try:
        with pytest.raises(errors.ReadOnlyDatabaseError, match="read-only"):
            Store.open(str(f))
        with pytest.raises(errors.ReadOnlyDatabaseError, match="read-only"):
            Store.open(str(f.parent / "new.sqlite3"))
    finally:
        os.chmod(f.parent, 0o755)
    assert digest(f) == before
    assert not (f.parent / "new.sqlite3").exists()


def test_newer_database_is_refused_and_left_unchanged(tmp_path):
    f = tmp_path / "labels.sqlite3"
    Store.open(str(f)).close()
    with sqlite3.connect(f) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    before = digest(f)
    with pytest.raises(errors.NewerDatabaseError) as e:
        Store.open(str(f))
    assert "newer version of EndoReview" in str(e.value) and "9999_from_the_future" in str(e.value)
    assert digest(f) == before


def test_network_file_system_is_refused_with_a_postgresql_hint(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw,relatime 0 0\n")
    with pytest.raises(errors.NetworkFilesystemError) as e:
        Store.open(str(tmp_path / "labels.sqlite3"), mounts_file=mounts)
    assert "nfs4" in str(e.value) and "PostgreSQL" in str(e.value)
    assert not (tmp_path / "labels.sqlite3").exists()
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nhost:/x {tmp_path} fuse.sshfs rw 0 0\n")
    with pytest.raises(errors.NetworkFilesystemError, match="sshfs"):
        Store.open(str(tmp_path / "labels.sqlite3"), mounts_file=mounts)
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n")
    Store.open(str(tmp_path / "labels.sqlite3"), mounts_file=mounts).close()


def test_full_disk_rolls_the_action_back_with_a_clear_message(tmp_path):
    f = tmp_path / "labels.sqlite3"
    with Store.open(str(f), reviewer="alice") as s:
        populate(s)
        video = s.list_videos()[0]
        n_before = s.count_labels()
        cursor = s.change_cursor()
    pages = sqlite3.connect(f).execute("PRAGMA page_count").fetchone()[0]
    before = digest(f)
    # the disk "fills up" at the current size: any growth fails (SQLITE_FULL), like ENOSPC would
    with Store.open(str(f), reviewer="alice", sqlite_pragmas={"max_page_count": pages}) as s:
        big = [NewLabel(video.id, "box", "polyp", frame=i % 20, bbox=(0, 0, 5, 5)) for i in range(3000)]
        with pytest.raises(errors.DiskFullError, match="full"):
            s.add_labels(big)
        assert s.count_labels() == n_before
        assert s.change_cursor() == cursor
        assert s.integrity_check() == "ok"
    assert digest(f) == before, "the database file is exactly as it was"
    with Store.open(str(f)) as s:  # and the database still works once there is room again
        s.add_labels(big[:1])


@pytest.mark.parametrize("db_file", sorted(DATA.glob("v*.sqlite3")), ids=lambda p: p.stem)
def test_every_released_schema_version_opens_with_its_data(tmp_path, db_file):
    f = tmp_path / db_file.name
    shutil.copy(db_file, f)
    original = dump(f)
    rev = sqlite3.connect(f).execute("SELECT version_num FROM alembic_version").fetchone()[0]
    with Store.open(str(f)) as s:
        assert s.integrity_check() == "ok"
        video = s.list_videos()[0]
        assert (video.frame_count, video.width, video.meta) == (20, 48, {"site": "s1"})
        labels = s.labels_for_video(video.id)
        assert len(labels) == 4 + 5  # 4 by hand, 5 predicted masks
        assert any(x.bbox == (11.0, 5.0, 18.0, 15.0) and x.state == "manual" for x in labels)
        assert s.active_model_version().name == "demo-1"
        assert s.list_jobs()[0].kind == "predict"
        assert len(s.frame_probs(s.list_prediction_runs(video.id)[0].id)) == 5
        assert {c.actor for c in s.changes_since(0)} == {"maker"}
        (seg,) = [x for x in labels if x.kind == "segment"]
        assert seg.provenance == (PROVENANCE if rev >= "0002" else None)
    backups = list(tmp_path.glob(f"{f.stem}.backup-*"))
    if rev == migrate.head_revision():
        assert backups == []
    else:
        # the backup API writes its own file header (journal mode, counters): compare what the files hold
        assert len(backups) == 1 and dump(backups[0]) == original


def test_schema_1_import_provenance_moves_onto_the_labels(tmp_path):
    """Schema 1 kept an import's per-label provenance in the video's metadata; the upgrade puts it on each label,
    with the format read from the change set that imported it, and the backup keeps the old file."""
    f = tmp_path / "v1.sqlite3"
    shutil.copy(DATA / "v1.sqlite3", f)
    with sqlite3.connect(f) as con:
        vid, meta = con.execute("SELECT id, meta FROM videos").fetchone()
        cs = con.execute(
            "INSERT INTO change_sets (actor, host, at, summary, video_id) VALUES "
            "('maker', 'maker-host', '2026-11-30 10:00:00', 'Import cvat-video a.xml from /d/a.xml', ?)",
            (vid,),
        ).lastrowid
        lid = con.execute(
            "INSERT INTO labels (video_id, kind, class_name, state, origin, frame, x0, y0, x1, y1, created_at, "
            "version) VALUES (?, 'box', 'polyp', 'manual', 'imported', 4, 1, 2, 9, 9, '2026-11-30 10:00:00', 1)",
            (vid,),
        ).lastrowid
        con.execute(
            "INSERT INTO audit_log (change_set_id, table_name, row_id, op) VALUES (?, 'labels', ?, 'insert')",
            (cs, lid),
        )
        old = {
            **json.loads(meta),
            "import_provenance": {
                "sources": ["/d/a.xml"],
                "labels": {str(lid): [0, 7, "track 0"], "99999": [0, 8, None]},  # 99999: deleted since
            },
        }
        con.execute("UPDATE videos SET meta = ? WHERE id = ?", (json.dumps(old), vid))
    with Store.open(str(f)) as s:
        assert s.get_label(lid).provenance == {
            "source": "/d/a.xml",
            "line": 7,
            "field": "track 0",
            "format": "cvat-video",
            "importer": None,
        }
        assert s.get_video(vid).meta == {"site": "s1"}
        assert s.imported_sources(vid) == {"/d/a.xml"}  # a re-import of /d/a.xml is still recognised
        assert all(x.provenance is None for x in s.labels_for_video(vid) if x.id != lid)
    (backup,) = tmp_path.glob("v1.backup-0001-*.sqlite3")
    with sqlite3.connect(backup) as con:
        assert "import_provenance" in json.loads(con.execute("SELECT meta FROM videos").fetchone()[0])


def test_older_schema_is_backed_up_before_the_upgrade(tmp_path, monkeypatch):
    f = tmp_path / "labels.sqlite3"
    with Store.open(str(f), reviewer="alice") as s:
        populate(s)
    original = digest(f)
    with sqlite3.connect(f) as con:
        n_labels = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    # pretend this EndoReview knows a newer schema than the file's
    head, known = migrate.head_revision(), migrate.known_revisions()
    monkeypatch.setattr(migrate, "head_revision", lambda: "9000")
    monkeypatch.setattr(migrate, "known_revisions", lambda: [*known, "9000"])
    upgraded = []
    monkeypatch.setattr(
        migrate, "upgrade", lambda conn, target="head": upgraded.append(migrate.current_revision(conn))
    )
    Store.open(str(f)).close()
    assert upgraded == [head]
    backups = list(tmp_path.glob(f"labels.backup-{head}-*.sqlite3"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as con:
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == n_labels
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert original  # the original file was only read for the backup


def test_postgresql_newer_schema_is_refused(pg_url):
    from sqlalchemy import create_engine, text

    Store.open(pg_url).close()
    e = create_engine(pg_url)
    with e.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(errors.NewerDatabaseError, match="newer version"):
        Store.open(pg_url)
    with e.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    e.dispose()


def test_unreachable_postgresql_gives_a_readable_error():
    with pytest.raises(errors.DatabaseOpenError) as e:
        Store.open("postgresql+psycopg://u:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(e.value) and "127.0.0.1" in str(e.value)


def test_migrations_build_exactly_the_schema_module(db_url):
    """A model change without a migration (or the reverse) fails here, on SQLite and PostgreSQL."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from endoreview.store.schema import Base

    with Store.open(db_url) as s, s.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []


def test_a_busy_database_is_retried_not_reported(tmp_path, caplog):
    """Another process holding the write lock longer than the busy timeout: the store backs off and retries."""
    import threading
    import time

    f = tmp_path / "labels.sqlite3"
    with Store.open(str(f), reviewer="alice", sqlite_pragmas={"busy_timeout": 20}) as s:
        populate(s)
        video = s.list_videos()[0]
        other = sqlite3.connect(f, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # a writer in another connection holds the lock ...
        release = threading.Timer(0.6, lambda: other.execute("COMMIT"))
        release.start()  # ... for 0.6 s, thirty times the busy timeout
        t0 = time.monotonic()
        try:
            lab = s.add_labels([NewLabel(video.id, "box", "polyp", frame=1, bbox=(0, 0, 3, 3))])[0]
        finally:
            release.join()
            other.close()
        assert time.monotonic() - t0 >= 0.5
        assert s.get_label(lab.id).bbox == (0.0, 0.0, 3.0, 3.0)


def test_the_revision_chain_read_without_alembic_is_alembics():
    """The app's start-up reads the head and known revisions from the version files (no Alembic, no Mako)."""
    migrate._chain.cache_clear()
    chain = migrate._chain()
    script = migrate.script_directory()
    assert chain is not None
    assert chain[-1] == script.get_current_head() == migrate.head_revision()
    assert list(chain) == [s.revision for s in reversed(list(script.walk_revisions()))]


def test_opening_a_current_database_does_not_import_alembic(tmp_path):
    """~0.3 s of CPU on the way to the app's first library listing went on importing Alembic and Mako."""
    import subprocess
    import sys

    db = tmp_path / "lib.sqlite3"
    code = (
        "import sys; from endoreview.store import Store\n"
        f"with Store.open('sqlite:///{db}', reviewer='t'): pass\n"  # creates it: Alembic runs
        "for m in [m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')]: del sys.modules[m]\n"
        f"with Store.open('sqlite:///{db}', reviewer='t'): pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
