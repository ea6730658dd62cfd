"""Issue 22 item 13: the learning loop on the demo, in the default suite.

The demo's phantom videos (the demo generator, shortened to 3 × 32 frames so the test stays in budget) are analysed
by the bundled demo model; the reviewer corrects every frame's mask to the truth (the model's suggestions become
edited, missed polyps drawn, false alarms rejected) and marks the videos reviewed; the fine-tune dialog starts a run
from the demo model with a small budget; its curves fill, the new version is registered as the demo model's child,
compared with it on the held-out video, activated, and analyses a video.
"""

from __future__ import annotations

import time

import pytest

from tests.ui.helpers import _in_thread

N_FRAMES = 32


@pytest.fixture
def demo_window(qtbot, strict_guard, pg_config, tmp_path, monkeypatch):
    from endoreview.services.model_resolver import demo_model_dir
    from tests.ui.helpers import open_window

    if demo_model_dir() is None:
        pytest.skip("the demo model (resources/demo_model) is not installed")
    monkeypatch.setenv("ENDOREVIEW_DATA_DIR", str(tmp_path / "data"))
    win = open_window(qtbot, tmp_path / "demo.sqlite3", reviewer="dr_demo", cache_mb=32)
    yield win
    win.close()


def _correct_to_truth(store, video_ids: list[int]) -> dict[str, int]:
    """The reviewer's pass: every frame's polyp mask made true (EditingService, as the editor's commands do)."""
    from core_model.phantom.groundtruth import load_ground_truth
    from endoreview.services.editing import EditingService
    from endoreview.services.library import LibraryService

    svc, lib = EditingService(store), LibraryService(store)
    counts = {"edited": 0, "manual": 0, "rejected": 0}
    for vid in video_ids:
        gt = load_ground_truth(lib.resolve_path(store.get_video(vid)).with_suffix(".json"))
        for f in range(gt.num_frames):
            truth = (gt.instance_mask(f) > 0).astype("uint8")
            before = {x.state for x in svc.frame_labels(vid, f) if x.kind == "mask"}
            out = svc.set_mask(vid, f, truth, "polyp", "Correct mask")
            if out is not None:
                counts[str(out.state)] = counts.get(str(out.state), 0) + 1
            elif "suggested" in before:
                counts["rejected"] += 1
        svc.set_review_status(vid, "reviewed")
    return counts


def test_correct_finetune_compare_activate_analyse_on_the_demo(demo_window, qtbot):
    from endoreview.services.demo import DemoSpec, setup_demo
    from endoreview.ui.finetune.controller import FinetuneController
    from endoreview.ui.registry.controller import RegistryController

    win = demo_window
    t0 = time.perf_counter()
    spec = DemoSpec(videos=DemoSpec().videos[:3], n_frames=N_FRAMES)
    store = win.backend.services.store
    demo = _in_thread(setup_demo, store, spec)
    assert demo.model_dir and len(demo.to_analyse) == 3
    with qtbot.waitSignal(win.analysis_ctl.finished, timeout=240000) as sig:
        win.analysis_ctl.analyse(list(demo.to_analyse), model_dir=demo.model_dir)
    assert sig.args[0].state == "succeeded", sig.args[0].log_text
    runs = {vid: _in_thread(store.list_prediction_runs, vid)[-1] for vid in demo.video_ids}
    parent_id = {r.model_version_id for r in runs.values()}.pop()
    assert parent_id is not None  # the demo model is a registered version: the new one's parent

    counts = _in_thread(_correct_to_truth, store, list(demo.video_ids))
    assert counts["edited"] > 0  # the model's masks corrected, not replaced

    ctl = getattr(win, "finetune_ctl", None) or FinetuneController(win.backend, win.runner, win.jobs, win)
    dlg = ctl.open_dialog(win)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.plan is not None, timeout=30000)
    assert sorted(dlg.selected_videos()) == sorted(demo.video_ids)  # the reviewed videos, ticked
    assert dlg.model.currentData() == parent_id
    assert sorted(dlg.plan.split.values()).count("val") >= 1
    print(f"dialog default plan: {dlg.summary.text()}")
    dlg.budget.setValue(0.2)  # a small budget; the dialog's default is 30 min
    qtbot.waitUntil(lambda: dlg.plan.budget_min == pytest.approx(0.2), timeout=20000)
    with qtbot.waitSignal(ctl.started, timeout=30000):
        dlg.btn_start.click()
    mon = ctl.monitors[-1]
    qtbot.waitUntil(lambda: mon.state != "running", timeout=300000)
    assert mon.state == "succeeded", mon.status.text()
    assert mon.loss_y and mon.val, "the curves stayed empty"
    new_id = int(mon.result["model_version_id"])
    mv = _in_thread(store.get_model_version, new_id)
    assert mv.parent_id == parent_id and mv.metrics.get("val")

    rc = RegistryController(win.backend, win.runner, win.jobs)
    view = rc.open(win, select=new_id)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: bool(view.selected()) and view.selected()[0].id == new_id, timeout=15000)
    view.btn_compare_parent.click()
    qtbot.waitUntil(lambda: bool(rc.compares) and rc.compares[-1].state != "running", timeout=240000)
    cmp = rc.compares[-1]
    assert cmp.state == "done", cmp.status.text()
    assert cmp.metrics.rowCount() > 0
    for i in range(cmp.metrics.rowCount()):  # the held-out comparison, parent (A) vs new (B)
        cells = [cmp.metrics.item(i, j).text() if cmp.metrics.item(i, j) else "" for j in range(4)]
        print("compare:", " | ".join(cells))
    view.select_id(new_id)
    view.btn_activate.click()
    qtbot.waitUntil(lambda: view.versions and view.versions[0].is_active, timeout=15000)
    vid = demo.video_ids[0]
    with qtbot.waitSignal(win.analysis_ctl.finished, timeout=240000):
        win.analysis_ctl.analyse([vid])
    run = _in_thread(store.list_prediction_runs, vid)[-1]
    assert run.model_version_id == new_id and run.state == "finished"
    print(f"learning loop on the demo: {time.perf_counter() - t0:.0f} s; val {mv.metrics.get('val')}")
    view.close()
    cmp.close()
