"""Issue 19 row 11: the database, the data folder and imports/ are created for the user only (not world-readable)."""

from __future__ import annotations

import os
import stat

import pytest

from endoreview.store import Store


@pytest.fixture
def open_umask():
    old = os.umask(
        0o022
    )  # the usual desktop umask: files 0644, folders 0755 unless the program says otherwise
    yield
    os.umask(old)


def _others_can_read(p) -> bool:
    return bool(stat.S_IMODE(p.stat().st_mode) & 0o077)


def test_database_data_and_import_folders_are_private(tmp_path, monkeypatch, open_umask):
    data = tmp_path / "fresh" / "EndoReview"
    monkeypatch.setenv("ENDOREVIEW_DATA_DIR", str(data))
    with Store.open(reviewer="alice") as s:
        s.ensure_reviewer()
        db = s.path
        wal = db.with_name(db.name + "-wal")
        assert wal.exists()
        assert not _others_can_read(wal)
    assert not _others_can_read(db), oct(db.stat().st_mode)
    assert not _others_can_read(data)
    from endoreview.interchange.importer import Importer

    with Store.open(reviewer="alice") as s:
        imports = Importer(s).work_dir
        imports.mkdir(parents=True, exist_ok=True)
    assert imports.is_dir() and not _others_can_read(imports)
    other = tmp_path / "elsewhere" / "labels.sqlite3"  # a database at a chosen path
    other.parent.mkdir()
    Store.open(str(other)).close()
    assert not _others_can_read(other)


def test_existing_world_readable_data_folder_is_tightened(tmp_path, monkeypatch, open_umask):
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    monkeypatch.setenv("ENDOREVIEW_DATA_DIR", str(data))
    from endoreview.paths import data_dir

    assert not _others_can_read(data_dir())
