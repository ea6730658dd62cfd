"""``endoreview --smoke-test``: prove an installation works, end to end, without touching the user's data.

Offscreen and in a throw-away data folder (unless ``ENDOREVIEW_DATA_DIR`` says otherwise): generate a short phantom
video, import it, open it in the player, analyse it with the bundled demo model through a real background job (the
same subprocess path the app uses), and check the predictions reached the timeline. Prints one JSON line per step
and exits 0 only if every step passed. Used by ``packaging/smoke_test.sh`` on the built bundle.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _say(**event) -> None:
    print(json.dumps(event), flush=True)


def run_smoke_test(timeout_s: float = 600.0) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if not os.environ.get("ENDOREVIEW_DATA_DIR"):
        os.environ["ENDOREVIEW_DATA_DIR"] = tempfile.mkdtemp(prefix="endoreview-smoke-")
    t0 = time.perf_counter()
    from endoreview.paths import data_dir, resources_dir

    model_dir = resources_dir() / "demo_model"
    if not (model_dir / "model.json").exists():
        _say(event="error", step="model", message=f"demo model missing in {model_dir}")
        return 1
    from core_model.phantom import generate_video

    video = generate_video(Path(data_dir()) / "smoke", "smoke", seed=7, n_frames=12, size=96)
    _say(event="step", step="phantom", seconds=round(time.perf_counter() - t0, 2))

    from PySide6.QtCore import QEventLoop, QTimer

    from endoreview.services.records import JobState
    from endoreview.ui.app import create_main_window, ensure_app

    app = ensure_app([sys.argv[0]])

    class _Args:
        db = None
        reviewer = "smoke-test"
        demo = False
        paths: list[str] = []

    win = create_main_window(_Args())
    win.show()
    win.start()

    def wait(cond, what: str, limit: float) -> bool:
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if cond():
                return True
            time.sleep(0.01)
        _say(event="error", step=what, message=f"timed out after {limit:.0f} s")
        return False

    state: dict = {}
    ok = wait(lambda: win.library_ctl.ready, "open store", 60)
    if ok:
        win.library_ctl.imported.connect(lambda *a: state.setdefault("imported", True))
        win.library_ctl.import_paths([str(video)], show_dialog=False)
        ok = wait(lambda: bool(win.library.model.rows), "import", 120)
    if ok:
        vid = win.library.model.rows[0].video_id
        win.open_video(vid)
        ok = wait(lambda: win.player.shown is not None, "open video", 60)
        _say(event="step", step="opened", frame=win.player.shown, seconds=round(time.perf_counter() - t0, 2))
    if ok:
        win.analysis_ctl.finished.connect(lambda entry: state.__setitem__("job", entry))
        win.analysis_ctl.analyse([vid], model_dir=str(model_dir))
        ok = wait(lambda: "job" in state, "analyse", timeout_s)
    if ok:
        entry = state["job"]
        if entry.state != JobState.SUCCEEDED:
            _say(event="error", step="analyse", message=f"job {entry.state}", log=entry.log_text[-2000:])
            ok = False
    if ok:
        ok = wait(
            lambda: (
                win.review_ctl.tracks is not None
                and win.review_ctl.tracks.predictions is not None
                and win.review_ctl.tracks.predictions.frames_done > 0
            ),
            "predictions on the timeline",
            60,
        )
    if ok:
        preds = win.review_ctl.tracks.predictions
        _say(
            event="step",
            step="analysed",
            frames=preds.frames_done,
            classes=list(preds.classes),
            seconds=round(time.perf_counter() - t0, 2),
        )
    win.close()
    QTimer.singleShot(0, app.quit)
    app.processEvents()
    _say(event="done", ok=ok, seconds=round(time.perf_counter() - t0, 2))
    return 0 if ok else 1
