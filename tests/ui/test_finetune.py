"""Fine-tuning from the app: the dialog's summary and warnings, a run cancelled and resumed to the end from the jobs
panel, the new version registered with held-out metrics, compared with its parent, activated and used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

TINY = (
    "num_frames=2",
    "img_size=32",
    "frame_stride=1",
    "clips_per_video=1",
    "batch_size=2",
    'head_config={"segmentation":{"decoder_channels":[16,16,16,16]},"detection":{"fpn_channels":32,"num_convs":1}}',
)


def _prepare(db: Path, root: Path, n_videos: int = 3) -> dict:
    from core_model.checkpoint import load_model_dir, save_model_dir
    from core_model.heads import build_task_model, save_task_model
    from core_model.models import create_model
    from endoreview.services.registry import RegistryService
    from endoreview.store import Store
    from tests.core_model.test_finetune_data import make_manifest
    from tests.services.test_registry_finetune_job import _load_library

    manifest = make_manifest(root / "videos", n_videos=n_videos, n_frames=8, size=32, label_every=2)
    store = Store.open(str(db), reviewer="tester")
    ids = _load_library(store, manifest)
    for vid in ids[:-1]:
        v = store.get_video(vid)
        store.update_video(vid, v.version, review_status="reviewed")
    bare = save_model_dir(
        root / "bare", create_model("endofm_tiny", depth=2), arch="endofm_tiny", preprocess={"img_size": 32}
    )
    meta = dataclasses.replace(
        load_model_dir(bare)[1],
        heads={"segmentation": {"classes": ["polyp"], "decoder_channels": [16, 16, 16, 16]}},
    )
    start = save_task_model(root / "start", build_task_model(meta), meta)
    parent = RegistryService(store).register(start, name="start", activate=True)
    store.close()
    return {"ids": ids, "parent": parent.id}


@pytest.fixture
def ft_window(qtbot, strict_guard, pg_config, tmp_path):
    from tests.ui.helpers import open_window

    guard = strict_guard
    guard.unmark_gui_thread()
    data = _prepare(tmp_path / "test.sqlite3", tmp_path)
    guard.mark_gui_thread(strict=True)
    win = open_window(qtbot, tmp_path / "test.sqlite3", cache_mb=32)
    win.data = data
    yield win
    win.close()


def _controller(win):
    from endoreview.ui.finetune.controller import FinetuneController

    ctl = getattr(win, "finetune_ctl", None) or FinetuneController(win.backend, win.runner, win.jobs, win)
    ctl.overrides = TINY
    return ctl


def _dialog(qtbot, ctl, win):
    dlg = ctl.open_dialog(win)
    qtbot.addWidget(dlg)
    # returns as soon as the plan is ready; the long limit only tolerates a loaded CI machine
    qtbot.waitUntil(lambda: dlg.plan is not None, timeout=120000)
    return dlg


def test_dialog_summarises_reviewed_videos_and_warns(ft_window, qtbot):
    win = ft_window
    ctl = _controller(win)
    dlg = _dialog(qtbot, ctl, win)
    ids = win.data["ids"]
    # reviewed videos are ticked by default, the active model is the starting point
    assert dlg.selected_videos() == ids[:-1]
    assert dlg.model.currentText().startswith("start") and "(active)" in dlg.model.currentText()
    plan = dlg.plan
    assert plan.parent_version == win.data["parent"] and plan.video_ids == tuple(ids[:-1])
    assert plan.label_counts["mask/polyp"] > 0 and "polyp (masks)" in dlg.summary.text()
    assert sorted(plan.split.values()) == ["train", "val"]
    assert "held out" in dlg.summary.text() and "estimated" in dlg.summary.text()
    assert "No GPU" in dlg.warnings.text()  # this machine (and CI) has none
    assert "fewer than" in dlg.warnings.text()  # a handful of tiny labels
    assert dlg.btn_start.isEnabled()
    # one video only: every label from one video, nothing held out
    dlg.set_videos([ids[1]])
    qtbot.waitUntil(lambda: dlg.plan.video_ids == (ids[1],), timeout=20000)
    assert "All labels come from one video" in dlg.warnings.text()
    assert "nothing is held out" in dlg.warnings.text()
    # no task ticked: nothing to start
    for cb in dlg.task_boxes.values():
        cb.setChecked(False)
    qtbot.waitUntil(lambda: dlg.plan.tasks == (), timeout=20000)
    assert not dlg.btn_start.isEnabled()
    dlg.close()


@pytest.mark.slow  # four subprocess runs (fine-tune, resume, compare, analyse): about 80 s on a shared CPU
def test_finetune_cancel_resume_register_compare_activate_analyse(ft_window, qtbot):
    win = ft_window
    ctl = _controller(win)
    dlg = _dialog(qtbot, ctl, win)
    for key in ("classification", "detection"):
        dlg.task_boxes[key].setChecked(False)
    dlg.budget.setValue(0.1)
    qtbot.waitUntil(lambda: dlg.plan.tasks == ("segmentation",) and dlg.plan.budget_min == 0.1, timeout=20000)
    with qtbot.waitSignal(ctl.started, timeout=20000):
        dlg.btn_start.click()
    mon = ctl.monitors[-1]
    # progress arrives; the user cancels the run
    qtbot.waitUntil(lambda: mon.bar.value() > 0 or mon.state != "running", timeout=60000)
    mon.btn_cancel.click()
    qtbot.waitUntil(lambda: mon.state != "running", timeout=60000)
    assert mon.state == "cancelled", mon.status.text()
    assert "resume" in mon.status.text().lower()
    # the jobs panel offers to resume it; the resumed run goes to the end and registers a child version
    panel = win.finetune_resume if hasattr(win, "finetune_resume") else None
    if panel is None:
        from endoreview.ui.finetune.resume import ResumePanel

        panel = ResumePanel(ctl._store, win.runner)
        panel.resumeRequested.connect(ctl.resume)
        qtbot.addWidget(panel)
    panel.refresh()
    qtbot.waitUntil(lambda: bool(panel.buttons), timeout=15000)
    with qtbot.waitSignal(ctl.started, timeout=20000):
        next(iter(panel.buttons.values())).click()
    mon2 = ctl.monitors[-1]
    qtbot.waitUntil(lambda: mon2.state != "running", timeout=120000)
    assert mon2.state == "succeeded", mon2.status.text()
    # the curves were drawn (by the first run, the resumed one, or both: cancel timing decides where epochs ran)
    assert mon.loss_y or mon2.loss_y, "loss curve stayed empty"
    assert mon.val or mon2.val, "no held-out metric curve"
    assert "Registered" in mon2.status.text()
    new_id = int(mon2.result["model_version_id"])
    store = win.backend.services.store  # the app's own connection (a second one could race the job's writes)
    mv = store.get_model_version(new_id)
    assert mv.parent_id == win.data["parent"]
    assert "segmentation/dice_frame_strict" in mv.metrics["val"]
    assert mv.data_snapshot["resumed_from_job"] is not None
    panel.refresh()
    qtbot.waitUntil(lambda: not panel.buttons, timeout=15000)

    # the registry shows it with its parent; compare it with the parent on the held-out video
    from endoreview.ui.registry.controller import RegistryController

    opened: list[tuple[int, int]] = []
    rc = RegistryController(win.backend, win.runner, win.jobs, open_frame=lambda v, f: opened.append((v, f)))
    view = rc.open(win, select=new_id)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: bool(view.selected()) and view.selected()[0].id == new_id, timeout=15000)
    assert "research use only" in view.details.toPlainText().lower()
    assert "start" in view.details.toPlainText() and "val:" in view.table.item(0, 5).text()
    view.btn_compare_parent.click()
    qtbot.waitUntil(lambda: bool(rc.compares) and rc.compares[-1].state != "running", timeout=120000)
    cmp = rc.compares[-1]
    assert cmp.state == "done", cmp.status.text()
    names = [cmp.metrics.item(i, 0).text() for i in range(cmp.metrics.rowCount())]
    assert "segmentation/dice_frame_strict" in names
    val_video = str(mv.data_snapshot["splits"]["val"][0])
    cmp.show_frame(val_video, 3)  # both models on the same frame
    qtbot.waitUntil(lambda: hasattr(cmp, "images"), timeout=60000)
    assert set(cmp.frame_preds) == {0, 1} and cmp.images[0].shape == (32, 32, 3)
    assert "mask(s)" in cmp.caption_a.text() and "mask(s)" in cmp.caption_b.text()
    if cmp.frames.rowCount():
        cmp._open_row(0, 0)
        assert opened and opened[0][0] in win.data["ids"]

    # activate it and analyse a video with it
    view.select_id(new_id)
    view.btn_activate.click()
    qtbot.waitUntil(lambda: view.versions and view.versions[0].is_active, timeout=15000)
    vid = win.data["ids"][0]
    with qtbot.waitSignal(win.analysis_ctl.finished, timeout=120000):
        win.analysis_ctl.analyse([vid])
    runs = store.list_prediction_runs(vid)
    assert runs and runs[-1].model_version_id == new_id and runs[-1].state == "finished"
    view.close()
    cmp.close()


def test_monitor_curves_from_events(qtbot):
    from endoreview.ui.finetune.monitor import FinetuneMonitor

    m = FinetuneMonitor("Fine-tune", epochs=2)
    qtbot.addWidget(m)
    m.on_event(
        {"event": "progress", "fraction": 0.3, "loss": 0.9, "epoch": 0, "eta_s": 75, "message": "epoch 1/2"}
    )
    m.on_event(
        {"event": "progress", "fraction": 0.5, "epoch": 0, "val": {"segmentation/dice_frame_strict": 0.4}}
    )
    m.on_event({"event": "progress", "fraction": 0.6, "loss": 0.7, "epoch": 1, "eta_s": 30})
    assert m.loss_y == [0.9, 0.7] and m.loss_x[0] < m.loss_x[1]
    assert m.val["segmentation/dice_frame_strict"] == ([1.0], [0.4])
    assert m.eta.text() == "ETA 30 s" and m.bar.value() == 600
    m.on_event({"event": "done", "state": "failed", "result": {}, "message": "CUDA out of memory"})
    assert m.state == "failed" and "CUDA out of memory" in m.status.text()
    assert not m.btn_cancel.isEnabled()
    assert Qt.WidgetAttribute  # Qt imported for the dialog tests
