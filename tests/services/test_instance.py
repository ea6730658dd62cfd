"""One app per database (issue 22 item 6): a second app on the same database is refused with a message that says
why, in another process too; the claim ends with the process that held it (a crash never blocks a restart)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from endoreview.services.app import AppServices
from endoreview.services.instance import AlreadyOpenError

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_app_on_the_same_database_is_refused_until_the_first_closes(tmp_path):
    db = str(tmp_path / "library.sqlite3")
    first = AppServices(db, reviewer="a")
    first.open()
    second = AppServices(f"sqlite:///{db}", reviewer="b")  # the same file, named another way
    with pytest.raises(AlreadyOpenError, match="already open on this database") as err:
        second.open()
    assert "library.sqlite3" in str(err.value) and f"process {os.getpid()}" in str(err.value)
    assert second.store is None
    other = AppServices(str(tmp_path / "other.sqlite3"), reviewer="c")
    other.open()  # another database is not affected
    other.close()
    first.close()
    second.open()
    second.close()


def test_the_claim_ends_with_the_process_even_when_it_is_killed(tmp_path):
    db = str(tmp_path / "library.sqlite3")
    holder = textwrap.dedent(
        f"""
        import sys, time
        from endoreview.services.app import AppServices
        app = AppServices({db!r}, reviewer="x")
        app.open()
        print("open", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(AlreadyOpenError, match=f"process {proc.pid}"):
            AppServices(db, reviewer="y").open()
    finally:
        proc.kill()
        proc.wait()
    again = AppServices(db, reviewer="y")
    again.open()
    again.close()
