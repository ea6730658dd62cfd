"""End to end with the real Endo-FM predictor: a randomly initialised tiny model analyses a phantom video from the
app (``python -m endoreview.jobs predict`` subprocess, torch only there) and its output reaches the timeline."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_model(tmp_path):
    from tests.core_model.tiny_model import save_tiny_task_model

    d = save_tiny_task_model(tmp_path / "tiny_model")
    assert json.loads((d / "model.json").read_text())
    return d


def test_real_predictor_results_reach_the_timeline(qtbot, main_window, tmp_path, tiny_model):
    from core_model.phantom import generate_video

    win = main_window
    video = generate_video(tmp_path, "case", seed=3, n_frames=24, size=96)
    with qtbot.waitSignal(win.library_ctl.imported, timeout=30000):
        win.library_ctl.import_paths([str(video)], show_dialog=False)
    qtbot.waitUntil(lambda: bool(win.library.model.rows), timeout=10000)
    vid = win.library.model.rows[0].video_id
    win.open_video(vid)
    qtbot.waitUntil(lambda: win.player.shown is not None, timeout=20000)
    with qtbot.waitSignal(win.analysis_ctl.finished, timeout=300000) as sig:
        win.analysis_ctl.analyse([vid], model_dir=str(tiny_model))
    assert sig.args[0].state == "succeeded", sig.args[0].log_text
    qtbot.waitUntil(
        lambda: (
            win.review_ctl.tracks is not None
            and win.review_ctl.tracks.predictions is not None
            and win.review_ctl.tracks.predictions.frames_done == 24
        ),
        timeout=20000,
    )
    assert set(win.review_ctl.tracks.predictions.classes) == {"normal", "abnormal"}
    assert win.player_widget.notice.isVisible()
