"""GUI test fixtures: a strict GUI-thread guard, indexed videos, a real backend on a temp database."""

from __future__ import annotations

import pytest

from tests.ui.helpers import _in_thread, make_indexed_video, open_window


@pytest.fixture(autouse=True)
def _qt_garbage_dies_on_the_gui_thread():
    """After each GUI test, collect its garbage here, on the GUI thread. Widgets left in reference cycles were
    otherwise destroyed by whichever thread's allocation next triggered a collection: a later test's worker thread
    then destroyed them while the GUI thread destroyed others, and PySide deadlocked between a Qt mutex and the
    interpreter lock (the whole suite in one process hung in a ``main_window`` set-up)."""
    yield
    import gc

    gc.collect()


@pytest.fixture
def strict_guard():
    """The GUI thread is marked and blocking calls on it raise; asserts nothing slipped through."""
    from endoreview.media import guard

    guard.mark_gui_thread(strict=True)
    guard.clear_violations()
    yield guard
    found = guard.violations()
    guard.unmark_gui_thread()
    guard.clear_violations()
    assert not found, f"blocking calls on the GUI thread: {[(v.kind, v.what) for v in found]}"


@pytest.fixture(scope="session")
def indexed_video(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return make_indexed_video(d / "indexed.mp4", n=90)


@pytest.fixture
def pg_config():
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")


@pytest.fixture
def main_window(qtbot, strict_guard, pg_config, tmp_path):
    win = open_window(qtbot, tmp_path / "test.sqlite3")
    yield win
    win.close()


@pytest.fixture
def edit(qtbot, main_window, indexed_video):
    win = main_window
    be = win.backend
    video, _ = _in_thread(be.library.import_video, be.project.id, str(indexed_video))
    ctl = win.editing()
    win.resize(1280, 800)
    win.open_video(video.id)
    qtbot.waitUntil(lambda: win.player.shown == (0, True) and ctl.loaded, timeout=15000)
    ctl.video = video
    yield ctl
    qtbot.waitUntil(lambda: ctl.writer.busy == 0, timeout=15000)
