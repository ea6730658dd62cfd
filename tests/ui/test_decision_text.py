"""Issue 20 items 5 and 7 as a clinician reads them: demo-model analyses of a video with one short polyp and of a
scene that is not endoscopy, recorded as the app's predict job records them, then read in the library and the
player. The whole-video call explains itself in the player's banner; the out-of-domain flag shows in the library's
finding column and in the banner, and the predictions stay listed and drawn."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ui.helpers import _in_thread


def _scene(n: int = 30) -> list[np.ndarray]:
    """A sunny outdoor-like scene (blue sky, green stripes, moving white squares): nothing like endoscopy."""
    yy, xx = np.mgrid[:128, :128]
    out = []
    for t in range(n):
        img = np.zeros((128, 128, 3), np.uint8)
        img[:60] = (90, 150, 235)
        img[60:] = np.where(((xx[60:] + 3 * t) // 8 % 2)[..., None] == 0, (40, 160, 60), (110, 200, 80))
        img[((xx - 4 * t) % 40 < 10) & (yy < 40)] = 250
        out.append(img)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from core_model.video import write_video
    from tests.core_model.test_model_contract import _polyp_seed

    d = tmp_path_factory.mktemp("decision")
    normal, _ = _polyp_seed(90, want=0)
    polyp, has = _polyp_seed(48, want=18)
    short = normal.copy()
    short[45:63] = polyp[np.flatnonzero(has)[:18]]  # a polyp in view from 00:01.5 for 0.6 s
    write_video(d / "short_polyp.mp4", short, fps=30.0)
    write_video(d / "garden.mp4", _scene(), fps=30.0)
    return d / "short_polyp.mp4", d / "garden.mp4"


def _analyse(be, video_id: int, path) -> None:
    """The demo model over the video through the serving path, recorded as the predict job records it."""
    from core_model.inference import Predictor
    from endoreview.services.predictions import PredictionRecorder
    from tests.core_model.test_model_contract import DEMO

    events = Predictor(DEMO, batch_size=8).predict_video(str(path))
    PredictionRecorder(be.store, video_id, None).record(events)


def test_the_call_is_explained_and_an_unlike_video_is_flagged_without_hiding_predictions(
    qtbot, main_window, videos
):
    win = main_window
    be = win.backend
    win.resize(1366, 768)
    ids = {}
    for path in videos:
        v, _ = _in_thread(be.library.import_video, be.project.id, str(path))
        _in_thread(_analyse, be, v.id, path)
        ids[path.stem] = v.id
    win.library_ctl.refresh()

    def row(name: str):
        return next((r for r in win.library.model.rows if r.video_id == ids[name]), None)

    qtbot.waitUntil(lambda: row("garden") is not None and bool(row("garden").finding), timeout=15000)
    # the library: the unlike video is flagged first in its finding, and what the model found is still listed
    garden = row("garden").finding
    assert garden.startswith("⚠ unlike the model's training data — "), garden
    assert "% of frames" in garden.split(" — ", 1)[1], garden
    col = 6  # "Model found"
    model = win.library.model
    k = model.rows.index(row("garden"))
    assert model.data(model.index(k, col)) == garden
    from PySide6.QtCore import Qt

    tip = model.data(model.index(k, col), Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(garden + "\nWhole video: "), tip  # hovering says why, and that nothing is hidden
    assert "⚠ unlike the videos this model was trained on (distance " in tip
    assert tip.endswith("its predictions may be meaningless here. The predictions are still shown."), tip
    short = row("short_polyp").finding
    assert short and "unlike" not in short and "% of frames" in short
    k = model.rows.index(row("short_polyp"))
    tip = model.data(model.index(k, col), Qt.ItemDataRole.ToolTipRole)
    assert "\nWhole video: abnormal: polyp suggested at 00:01" in tip and "⚠" not in tip, tip

    # the player: the whole-video call in words, located at the polyp
    win.open_video(ids["short_polyp"])
    qtbot.waitUntil(lambda: "whole video:" in win.player_widget.banner.text(), timeout=20000)
    banner = win.player_widget.banner.text()
    assert "abnormal: polyp suggested at 00:01" in banner and "(suggested)" in banner, banner
    assert "unlike" not in banner
    assert win.player_widget.banner.toolTip() == banner  # the whole call, even where the header cuts it

    # the unlike video: flagged in the banner, its predictions still there and drawn on the timeline
    win.open_video(ids["garden"])
    qtbot.waitUntil(
        lambda: "unlike the model's training data" in win.player_widget.banner.text(), timeout=20000
    )
    banner = win.player_widget.banner.text()
    assert "whole video:" in banner and " · unlike the model's training data" in banner, banner
    tracks = win.review_ctl.tracks
    assert tracks.predictions is not None and not tracks.predictions.empty
    assert tracks.predictions.frames_done == 30
