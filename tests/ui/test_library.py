"""The library table: sorting, filtering, search, missing files shown as such, thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from endoreview.ui.library import LibraryRow, LibraryWidget


def _row(i, name, status="unreviewed", exists=True, unc=None, frames=300, finding=""):
    return LibraryRow(
        i, name, f"/videos/{name}", exists, frames, 30.0, 1920, 1080, status, "dr_a", finding, unc
    )


@pytest.fixture
def lib(qtbot):
    w = LibraryWidget()
    qtbot.addWidget(w)
    w.resize(1280, 600)  # wide enough for three preview frames (a narrow table shows two)
    w.show()
    w.set_rows(
        [
            _row(1, "b_case.mp4", "reviewed", unc=0.2, frames=900),
            _row(2, "a_case.mp4", "in_review", unc=0.7, frames=300, finding="polyp in 12% of frames"),
            _row(3, "c_case.mp4", exists=False, frames=600),
        ]
    )
    return w


def names(w):
    return [w.proxy.index(r, 1).data() for r in range(w.proxy.rowCount())]


def test_sort_by_name_duration_and_uncertainty(lib):
    assert names(lib) == ["a_case.mp4", "b_case.mp4", "c_case.mp4"]
    lib.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # duration
    assert names(lib) == ["b_case.mp4", "c_case.mp4", "a_case.mp4"]
    lib.table.sortByColumn(7, Qt.SortOrder.DescendingOrder)  # uncertainty, unknown last
    assert names(lib) == ["a_case.mp4", "b_case.mp4", "c_case.mp4"]


def test_filter_search_and_missing(lib):
    assert "1 missing" in lib.count.text()
    lib.status_filter.setCurrentIndex(lib.status_filter.findData("missing"))
    assert names(lib) == ["c_case.mp4"]
    ix = lib.proxy.index(0, 4)
    assert ix.data() == "missing file" and "File not found" in ix.data(Qt.ItemDataRole.ToolTipRole)
    lib.status_filter.setCurrentIndex(lib.status_filter.findData("reviewed"))
    assert names(lib) == ["b_case.mp4"]
    lib.status_filter.setCurrentIndex(0)
    lib.search.setText("polyp")  # search covers what the model found
    assert names(lib) == ["a_case.mp4"]
    assert lib.proxy.index(0, 6).data() == "polyp in 12% of frames"


def test_thumbnail_strip_shows_whole_tiles_and_double_click_opens(qtbot, lib):
    strip = np.zeros((72, 6 * 128, 3), np.uint8)
    lib.model.set_thumb(2, strip)
    qtbot.waitUntil(lambda: lib.model.row_for(2).thumb is not None)  # thumbnails are shown in batches
    lib.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
    pm = lib.proxy.index(0, 0).data(Qt.ItemDataRole.DecorationRole)
    assert pm.height() == 54 and pm.width() == round(3 * 128 * 54 / 72)
    with qtbot.waitSignal(lib.openRequested) as sig:
        lib.table.doubleClicked.emit(lib.proxy.index(0, 1))
    assert sig.args[0] == 2
    lib.set_rows([])
    assert lib.empty_box.isVisible() and not lib.table.isVisible()


def test_a_very_wide_video_keeps_the_result_columns_in_view(qtbot):
    """Issue 22.7: a 4:1 video's thumbnail strip pushed "Model found" and "Uncertainty" off-screen."""
    from endoreview.ui.library import MAX_STRIP_W, STRIP_TILES, THUMB_H

    w = LibraryWidget()
    qtbot.addWidget(w)
    w.resize(1366, 500)
    w.show()
    wide = _row(1, "wide.mp4", finding="polyp in 3% of frames", unc=0.4)
    w.set_rows([wide])
    w.model.set_thumb(1, np.zeros((THUMB_H, 4 * THUMB_H * STRIP_TILES, 3), np.uint8))  # 4:1 frames
    qtbot.waitUntil(lambda: w.model.rows[0].thumb is not None)
    pm = w.model.data(w.model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    assert pm.width() <= MAX_STRIP_W
    qtbot.wait(50)
    hh = w.table.horizontalHeader()
    assert hh.sectionPosition(7) + hh.sectionSize(7) <= w.table.viewport().width() + 1  # Uncertainty in view


def test_thumbnails_arriving_one_by_one_do_not_remeasure_the_whole_table(qtbot, monkeypatch):
    """App start with 200 videos: each thumbnail the media queue delivered made the table measure every cell of
    every column again (O(videos) per thumbnail, seconds of GUI-thread time while the first video was opened)."""
    from endoreview.ui import library

    calls = {"on": False, "other": 0, "flushes": 0}

    class Counting(library.LibraryModel):
        def _apply_thumbs(self):
            calls["flushes"] += calls["on"]
            return super()._apply_thumbs()

        def data(self, index, role=Qt.ItemDataRole.DisplayRole):
            if calls["on"] and index.isValid() and index.column() != 0 and index.row() >= 100:
                calls["other"] += 1  # rows far below the viewport: only a whole-table measurement reads them
            return super().data(index, role)

    monkeypatch.setattr(library, "LibraryModel", Counting)
    w = LibraryWidget()
    qtbot.addWidget(w)
    w.resize(1366, 700)
    w.show()
    n = 200
    w.set_rows(
        [_row(i, f"video_{i:03d}.mp4", unc=0.5, finding="polyp in 1% of frames") for i in range(1, n + 1)]
    )
    qtbot.wait(20)
    calls["on"] = True
    strip = np.full((72, 6 * 128, 3), 90, np.uint8)
    for i in range(1, 41):  # one thumbnail per event-loop round, as the media queue delivers them
        w.model.set_thumb(i, strip)
        qtbot.wait(1)
    qtbot.waitUntil(lambda: all(r.thumb is not None for r in w.model.rows[:40]))
    qtbot.wait(20)
    calls["on"] = False
    # the rows below the viewport are read at most once per batch of thumbnails, not once per thumbnail (the old
    # code: 40 measurements of every row, > 20,000 calls for these 100 rows); how many batches 40 thumbnails make
    # depends on the machine's load, so the bound is per batch
    assert calls["flushes"] < 40 or calls["other"] == 0, calls
    whole_table = 100 * len(library.COLUMNS) * 10  # these rows' cells, each asked for up to ~10 roles
    assert calls["other"] <= max(calls["flushes"], 1) * whole_table, calls
    hh = w.table.horizontalHeader()
    assert hh.sectionSize(0) >= w.table.sizeHintForColumn(0)  # the preview column still fits its strips
