"""About shows the version, the active model's card, the research notice and the licences; an unexpected error
shows a short message and the log's location, and the traceback lands in the (rotating) log."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def runner():
    from endoreview.ui.tasks import TaskRunner

    r = TaskRunner(workers=1)
    yield r
    r.shutdown()


def test_about_dialog(qtbot, runner, tmp_path):
    from core_model.checkpoint import save_model_dir
    from core_model.models import create_model
    from endoreview import RESEARCH_NOTICE, __version__
    from endoreview.services.registry import RegistryService
    from endoreview.store import Store
    from endoreview.ui.about import AboutDialog

    store = Store.open(str(tmp_path / "db.sqlite3"))
    d = save_model_dir(tmp_path / "m", create_model("endofm_tiny", depth=1), arch="endofm_tiny")
    RegistryService(store).register(
        d, name="hospital-v3", activate=True, metrics={"val": {"segmentation/dice_frame_strict": 0.81}}
    )
    dlg = AboutDialog(runner, lambda: store)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.loaded, timeout=10000)
    text = dlg.text.toPlainText()
    assert f"EndoReview {__version__}" in text and RESEARCH_NOTICE in text
    assert "Active model: hospital-v3" in text and "0.810" in text
    assert "Endo-FM" in text and "Apache-2.0" in text and "PySide6" in text
    store.close()


def test_unexpected_error_shows_a_dialog_and_logs_the_traceback(qtbot):
    from pathlib import Path

    from endoreview.jobs.runner import SCRUBBER
    from endoreview.ui.about import ErrorReporter

    SCRUBBER.register(7, Path("/data/ward3/patient_smith_colonoscopy.mp4"))
    rep = ErrorReporter()
    try:
        raise RuntimeError("decoder exploded on /data/ward3/patient_smith_colonoscopy.mp4")
    except RuntimeError as exc:
        rep.hook(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: rep.dialog is not None, timeout=5000)
    assert "decoder exploded" in rep.dialog.text() and str(rep.path) in rep.dialog.informativeText()
    log = rep.path.read_text()
    assert "Traceback" in log and "decoder exploded on <video 7>" in log
    assert "patient_smith" not in log  # videos are named by id in the log
    for key in [k for k, v in SCRUBBER._names.items() if v == "<video 7>"]:
        del SCRUBBER._names[key]
    rep.dialog.close()
    for h in list(logging.getLogger().handlers):
        if getattr(h, "_endoreview", False):
            logging.getLogger().removeHandler(h)
            h.close()
