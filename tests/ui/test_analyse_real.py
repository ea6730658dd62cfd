"""End to end with the real Endo-FM predictor: a randomly initialised tiny model analyses a phantom video from the
app (``python -m endoreview.jobs predict`` subprocess, torch only there) and its output reaches the timeline."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_model(tmp_path):
    import torch

    from core_model.checkpoint import ModelMeta
    from core_model.heads import (
        ClassificationHead,
        DetectionHead,
        EndoFMTaskModel,
        SegmentationHead,
        save_task_model,
    )
    from core_model.models import create_model

    torch.manual_seed(0)
    bb = create_model("endofm_tiny", img_size=64, num_frames=4)
    heads = {
        "classification": ClassificationHead(192, ["normal", "abnormal"]),
        "segmentation": SegmentationHead.from_config(
            {"classes": ["polyp"], "decoder_channels": [32, 32, 16, 16]}, 192, 16, 6
        ),
        "detection": DetectionHead(192, ["polyp"], fpn_channels=32, num_convs=1),
    }
    d = tmp_path / "tiny_model"
    meta = ModelMeta.for_config(bb.cfg, "endofm_tiny", preprocess={"frame_stride": 1, "clip_stride": 2})
    save_task_model(d, EndoFMTaskModel(bb, heads), meta)
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
