from __future__ import annotations

import pytest


@pytest.fixture
def store(tmp_path):
    from endoreview.store import Store

    s = Store.open(str(tmp_path / "labels.sqlite3"), reviewer="alice", host="ws-1")
    yield s
    s.close()
