"""The built-in demo: phantom videos generated once, imported, analysed or a clear notice without the demo model."""

from __future__ import annotations

import json

import pytest

from endoreview.services import demo
from endoreview.services.demo import DemoSpec, DemoVideo, setup_demo

SMALL = DemoSpec(videos=(DemoVideo("demo_a", 1), DemoVideo("demo_b", 2)), n_frames=16, size=128)


def test_demo_setup_imports_videos_once_and_says_when_the_model_is_missing(tmp_path, monkeypatch):
    from endoreview.store import Store

    monkeypatch.setattr(demo, "demo_model_dir", lambda: None)
    with Store.open(str(tmp_path / "db.sqlite3"), reviewer="t") as store:
        first = setup_demo(store, SMALL)
        assert first.generated == 2 and len(first.video_ids) == 2 and first.to_analyse == first.video_ids
        assert first.model_dir is None and "not installed" in first.notice
        videos = store.list_videos()
        assert sorted(v.frame_count for v in videos) == [16, 16]
        again = setup_demo(store, SMALL)
        assert again.generated == 0 and again.video_ids == first.video_ids  # nothing duplicated


def test_a_newer_demo_spec_replaces_older_demo_videos_without_losing_reviewed_labels(tmp_path, monkeypatch):
    """An app that ran an older demo (e.g. small polyps the current model was not trained on) gets the new videos,
    and the old ones leave the library; a label made on one of them is kept."""
    from dataclasses import replace

    from endoreview.services.library import LibraryService
    from endoreview.store import Store
    from endoreview.store.records import NewLabel

    monkeypatch.setattr(demo, "demo_model_dir", lambda: None)
    with Store.open(str(tmp_path / "db.sqlite3"), reviewer="t") as store:
        old = setup_demo(store, replace(SMALL, polyp_scale=1.0))
        store.add_labels([NewLabel(old.video_ids[0], "segment", "polyp", start_frame=0, end_frame=4)])
        new = setup_demo(store, SMALL)
        assert new.generated == 2 and new.retired == 2 and not set(new.video_ids) & set(old.video_ids)
        assert sorted(v.id for v in LibraryService(store).list_videos()) == sorted(new.video_ids)
        assert store.count_labels(old.video_ids[0])  # the label survives the retirement
        assert setup_demo(store, SMALL).retired == 0  # current videos stay


def test_demo_uses_the_bundled_model_when_present(tmp_path, monkeypatch):
    from endoreview.store import Store

    model = tmp_path / "demo_model"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"format": "x"}))
    (model / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(demo, "demo_model_dir", lambda: model)
    with Store.open(str(tmp_path / "db.sqlite3"), reviewer="t") as store:
        r = setup_demo(store, SMALL)
        active = store.active_model_version()  # issue 22.8: no model was marked active after the demo
        assert active is not None and active.files_dir == str(model)
        assert setup_demo(store, SMALL).model_dir == str(model)
        assert [mv.id for mv in store.list_model_versions()] == [active.id]  # registered once
    assert r.notice is None and r.model_dir == str(model)


@pytest.mark.parametrize("with_model", [False, True])
def test_demo_from_the_app(qtbot, main_window, tmp_path, monkeypatch, with_model):
    win = main_window
    win.demo_ctl.spec = SMALL
    if with_model:
        model = tmp_path / "demo_model"
        model.mkdir()
        (model / "model.json").write_text(json.dumps({"format": "x"}))
        (model / "model.safetensors").write_bytes(b"")
        monkeypatch.setattr(demo, "demo_model_dir", lambda: model)
        win.backend.jobs.job_module = "tests.ui.job_predictor"
    else:
        monkeypatch.setattr(demo, "demo_model_dir", lambda: None)
        import endoreview.services.model_resolver as resolver

        monkeypatch.setattr(resolver, "demo_model_dir", lambda: None)
    with qtbot.waitSignal(win.demo_ctl.ready, timeout=60000):
        win.act_demo.trigger()
    qtbot.waitUntil(lambda: len(win.library.model.rows) == 2, timeout=10000)
    if with_model:
        with qtbot.waitSignal(win.analysis_ctl.finished, timeout=60000) as sig:
            pass
        assert sig.args[0].state == "succeeded", sig.args[0].log_text
        qtbot.waitUntil(lambda: all(r.finding for r in win.library.model.rows), timeout=10000)
        assert "abnormal in 50% of frames" in win.library.model.rows[0].finding
        assert "not a medical device" in win.library.notice.text()
    else:
        assert "not installed" in win.demo_ctl.notice
        assert win.library.notice.isVisible() and "not installed" in win.library.notice.text()
        assert not win.jobs.jobs
