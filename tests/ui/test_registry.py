"""The Models window: versions with parent and metrics, activate/roll back/delete with confirmation, import with a
clear message for a file that is not an Endo-FM checkpoint, and the comparison view's tables and frame links."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def registry_env(qtbot, tmp_path):
    from core_model.checkpoint import save_model_dir
    from core_model.models import create_model
    from endoreview.services.registry import RegistryService
    from endoreview.store import Store
    from endoreview.ui.tasks import TaskRunner

    store = Store.open(str(tmp_path / "db.sqlite3"), reviewer="tester")
    d = save_model_dir(tmp_path / "m", create_model("endofm_tiny", depth=1), arch="endofm_tiny")
    reg = RegistryService(store)
    first = reg.register(
        d, name="first", activate=True, metrics={"val": {"segmentation/dice_frame_strict": 0.5}}
    )
    second = reg.register(
        d,
        name="second",
        parent_id=first.id,
        activate=True,
        metrics={"val": {"segmentation/dice_frame_strict": 0.7}},
        data_snapshot={"video_ids": [1, 2], "label_counts": {"mask": {"polyp": 26}, "video": {"normal": 4}}},
    )
    runner = TaskRunner(workers=1)
    yield store, runner, first, second
    runner.shutdown()
    store.close()


def test_registry_lists_activates_rolls_back_and_deletes_with_confirmation(registry_env, qtbot):
    from endoreview.ui.registry.view import RegistryView

    store, runner, first, second = registry_env
    view = RegistryView(lambda: store, runner)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: len(view.versions) == 2, timeout=10000)
    assert [mv.name for mv in view.versions] == ["second", "first"]  # newest first
    assert view.table.item(0, 0).text() == "●" and view.table.item(0, 2).text() == "first"
    assert "0.700" in view.table.item(0, 5).text() and "2 videos, 30 labels" == view.table.item(0, 4).text()
    text = view.details.toPlainText()
    assert "second" in text and "Parent: first" in text and "not a medical device" in text
    assert not view.btn_delete.isEnabled()  # the active version cannot be deleted
    assert view.btn_compare_parent.isEnabled()
    with qtbot.waitSignal(view.compareRequested) as sig:
        view.btn_compare_parent.click()
    assert sig.args == [first.id, second.id]
    # roll back: the parent becomes active
    view.btn_rollback.click()
    qtbot.waitUntil(lambda: "Rolled back" in view.status.text(), timeout=10000)
    qtbot.waitUntil(lambda: view.versions and view.versions[1].is_active, timeout=10000)
    assert store.active_model_version().id == first.id
    # delete asks first; "No" keeps it
    view.select_id(second.id)
    asked = []
    view.confirm = lambda title, text: asked.append(text) or False
    view.btn_delete.click()
    assert asked and "cannot be undone" in asked[0]
    assert len(store.list_model_versions()) == 2
    view.confirm = lambda title, text: True
    view.btn_delete.click()
    qtbot.waitUntil(lambda: len(view.versions) == 1, timeout=10000)
    assert [mv.name for mv in store.list_model_versions()] == ["first"]
    # activate again is a no-op button for the active one
    view.select_id(first.id)
    assert not view.btn_activate.isEnabled()


def test_a_refresh_while_ctrl_is_held_still_selects_one_version(registry_env, qtbot):
    """QTableView.selectRow toggles when Ctrl is held: a refresh landing during Ctrl+Z would empty the details."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from endoreview.ui.registry.view import RegistryView

    store, runner, first, second = registry_env
    view = RegistryView(lambda: store, runner)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: len(view.versions) == 2, timeout=10000)
    qtbot.keyClick(view.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Qt now reads Ctrl as held
    assert QApplication.keyboardModifiers() & Qt.KeyboardModifier.ControlModifier
    try:
        for _ in range(2):
            view._render(list(reversed(view.versions)), select=second.id)
            assert [mv.name for mv in view.selected()] == ["second"]
            assert "Parent: first" in view.details.toPlainText()
    finally:
        qtbot.keyClick(view.table, Qt.Key.Key_Shift)  # let go of the modifier for the tests after this one


def test_import_of_a_file_that_is_not_a_checkpoint_says_so(registry_env, qtbot, tmp_path):
    from endoreview.ui.registry.view import RegistryView

    store, runner, *_ = registry_env
    bogus = tmp_path / "holiday.pth"
    bogus.write_bytes(b"this is not a checkpoint")
    view = RegistryView(lambda: store, runner)
    qtbot.addWidget(view)
    view.ask_file = lambda: str(bogus)
    view.btn_import.click()
    qtbot.waitUntil(lambda: "failed" in view.status.text(), timeout=60000)
    assert "holiday.pth is not a usable Endo-FM checkpoint" in view.status.text()
    assert len(store.list_model_versions()) == 2


def test_compare_view_tables_and_frame_links(registry_env, qtbot, tmp_path):
    from endoreview.ui.registry.compare import CompareView, held_out, overlay

    store, runner, first, second = registry_env
    assert held_out(second) is None  # no manifest recorded: nothing to compare on
    view = CompareView(first, second, str(tmp_path / "manifest.json"), "val", runner)
    qtbot.addWidget(view)
    view.load(
        {
            "metrics": [
                {"metric": "segmentation/dice_frame_strict", "a": 0.5, "b": 0.7, "delta": 0.2},
                {"metric": "detection/f1", "a": 0.6, "b": None, "delta": None},
            ],
            "disagreements": [
                {
                    "video": "7",
                    "frame": 12,
                    "a": {"mask_pixels": 0},
                    "b": {"mask_pixels": 40},
                    "reason": "mask on one side only",
                },
                {
                    "video": "9",
                    "frame": -1,
                    "a": {"video_pred": 0},
                    "b": {"video_pred": 1},
                    "reason": "video class",
                },
            ],
        }
    )
    assert view.metrics.item(0, 3).text() == "+0.2000" and view.metrics.item(1, 2).text() == "–"
    assert view.frames.item(0, 1).text() == "12" and view.frames.item(1, 1).text() == "whole video"
    # each side's outcome in words, not JSON (issue 22.8)
    assert (view.frames.item(0, 3).text(), view.frames.item(0, 4).text()) == ("no mask", "mask 40 px")
    assert view.frames.item(1, 4).text() == "video class #1"
    with qtbot.waitSignal(view.openFrame) as sig:
        view.frames.cellDoubleClicked.emit(0, 0)
    assert sig.args == [7, 12]
    # overlays: version A's mask tints its pixels, a box is outlined
    from pycocotools import mask as mask_utils

    m = np.zeros((20, 20), np.uint8)
    m[5:10, 5:10] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    img = np.full((20, 20, 3), 100, np.uint8)
    out = overlay(img, {"masks": [{"rle": rle}], "boxes": [{"bbox": [1, 1, 15, 15]}]}, (0, 229, 255))
    assert (out[7, 7] != img[7, 7]).any() and (out[12, 12] == img[12, 12]).all()
    assert tuple(out[1, 5]) == (0, 229, 255)


def test_a_disagreeing_frame_opens_in_the_player_and_menus_are_there(qtbot, main_window, indexed_video):
    from endoreview.ui.finetune.attach import open_at
    from tests.ui.helpers import read_index

    win = main_window
    menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions() if a.menu() is not None}
    assert [a.text() for a in menus["Models"].actions()] == ["Fine-tune…", "Models…"]
    assert "Settings…" in [a.text() for a in menus["File"].actions()]
    assert "About EndoReview" in [a.text() for a in menus["Help"].actions()]
    with qtbot.waitSignal(win.library_ctl.imported, timeout=20000):
        win.library_ctl.import_paths([str(indexed_video)], show_dialog=False)
    qtbot.waitUntil(lambda: len(win.library.model.rows) == 1, timeout=10000)
    open_at(win, win.library.model.rows[0].video_id, 42)
    qtbot.waitUntil(lambda: win.player.shown == (42, True), timeout=10000)
    assert win.tabs.currentIndex() == 1
    assert read_index(np.asarray(win.player_widget.view.image.image)) == 42
