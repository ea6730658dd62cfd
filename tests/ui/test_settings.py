"""Settings: saved values survive, a PostgreSQL password never reaches the settings file, caches can be cleared."""

from __future__ import annotations

import json
import os
import stat

import pytest


@pytest.fixture
def runner():
    from endoreview.ui.tasks import TaskRunner

    r = TaskRunner(workers=1)
    yield r
    r.shutdown()


def test_settings_dialog_saves_and_keeps_the_password_out(qtbot, runner, tmp_path, monkeypatch):
    from endoreview.services.app_settings import database_url, load_settings, settings_path
    from endoreview.ui.settings import SettingsDialog

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setitem(__import__("sys").modules, "keyring", None)  # no OS keyring here: ~/.pgpass
    dlg = SettingsDialog(runner, label_sets=["polyps"])
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.settings is not None, timeout=10000)
    assert dlg.keys.rowCount() > 5 and any(
        dlg.keys.item(i, 1).text() == "Play / pause" for i in range(dlg.keys.rowCount())
    )
    dlg.reviewer.setText("dr.lee")
    dlg.db_kind.setCurrentIndex(dlg.db_kind.findData("postgresql"))
    dlg.pg_url.setText("postgresql://reviewer:s3cret@db.hospital:5433/endo")
    dlg.cache_limit.setValue(512)
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    with qtbot.waitSignal(dlg.saved, timeout=10000):
        dlg.btn_save.click()
    raw = settings_path().read_text()
    assert "s3cret" not in raw
    s = load_settings()
    assert (s.reviewer, s.db_kind, s.cache_limit_mb, s.device) == ("dr.lee", "postgresql", 512, "cpu")
    assert s.pg_url == "postgresql://reviewer@db.hospital:5433/endo"
    pgpass = tmp_path / ".pgpass"
    assert pgpass.read_text().strip() == "db.hospital:5433:endo:reviewer:s3cret"
    assert stat.S_IMODE(os.stat(pgpass).st_mode) == 0o600
    assert database_url(s) == "postgresql+psycopg://reviewer@db.hospital:5433/endo"


def test_bad_database_url_is_refused_with_a_reason(qtbot, runner):
    from endoreview.services.app_settings import settings_path
    from endoreview.ui.settings import SettingsDialog

    dlg = SettingsDialog(runner)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.settings is not None, timeout=10000)
    dlg.db_kind.setCurrentIndex(dlg.db_kind.findData("postgresql"))
    dlg.pg_url.setText("mysql://somewhere")
    dlg.btn_save.click()
    qtbot.waitUntil(lambda: "not a PostgreSQL URL" in dlg.status.text(), timeout=10000)
    assert not settings_path().exists()


def test_clear_caches_frees_the_space(qtbot, runner):
    from endoreview.paths import cache_dir
    from endoreview.ui.settings import SettingsDialog

    (cache_dir() / "proxies").mkdir(parents=True, exist_ok=True)
    (cache_dir() / "proxies" / "a.mp4").write_bytes(b"x" * 300_000)
    dlg = SettingsDialog(runner)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: "0.3 MB used" in dlg.cache_used.text(), timeout=10000)
    dlg.btn_clear.click()
    qtbot.waitUntil(lambda: "0.0 MB used" in dlg.cache_used.text(), timeout=10000)
    assert "Cleared 0.3 MB" in dlg.status.text()
    assert not any(cache_dir().iterdir())
    json.dumps({})


def test_saved_reviewer_and_database_apply_at_start(tmp_path, monkeypatch):
    from endoreview.services.app import AppServices
    from endoreview.services.app_settings import Settings, save_settings
    from endoreview.ui.finetune.attach import apply_settings

    monkeypatch.delenv("ENDOREVIEW_DB_URL", raising=False)
    monkeypatch.delenv("ENDOREVIEW_REVIEWER", raising=False)
    save_settings(Settings(reviewer="dr.lee", sqlite_path=str(tmp_path / "ward.sqlite3")))
    b = AppServices()
    apply_settings(b)
    assert b.reviewer == "dr.lee" and b.db_url == f"sqlite:///{tmp_path / 'ward.sqlite3'}"
    given = AppServices("sqlite:///elsewhere.sqlite3", reviewer="cli-user")  # the command line wins
    apply_settings(given)
    assert (given.db_url, given.reviewer) == ("sqlite:///elsewhere.sqlite3", "cli-user")


def test_the_storage_figure_counts_fine_tune_runs(qtbot, runner):
    """Issue 22.8: fine-tune runs (~95 MB each) were not counted in Settings' storage figure."""
    from endoreview.paths import cache_dir, data_dir
    from endoreview.ui.settings import SettingsDialog

    (cache_dir() / "thumbs").mkdir(parents=True, exist_ok=True)
    (cache_dir() / "thumbs" / "t.jpg").write_bytes(b"x" * 200_000)
    for job, size in ((3, 1_500_000), (4, 700_000)):
        run = data_dir() / "runs" / f"job-{job}" / "run"
        run.mkdir(parents=True, exist_ok=True)
        (run / "checkpoint.pth").write_bytes(b"x" * size)
    dlg = SettingsDialog(runner)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: "fine-tune runs" in dlg.storage.text(), timeout=10000)
    text = dlg.storage.text()
    assert text.startswith("2.3 MB: caches 0.2 MB, fine-tune runs 2.1 MB (2 run folders"), text
