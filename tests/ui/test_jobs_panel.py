"""The jobs panel runs subprocesses that speak JSON lines: progress, success, cancel, failure with its log."""

from __future__ import annotations

import sys

import pytest

from endoreview.ui.jobs_panel import JobsPanel

PROGRESS = (
    "import json, sys, time\n"
    "for i in range({n}):\n"
    "    print(json.dumps({{'event': 'progress', 'done': i + 1, 'total': {n}, 'message': f'step {{i + 1}}'}}), flush=True)\n"
    "    time.sleep({sleep})\n"
    "print(json.dumps({{'event': 'done', 'state': 'succeeded'}}), flush=True)\n"
)


@pytest.fixture
def panel(qtbot):
    p = JobsPanel()
    qtbot.addWidget(p)
    p.show()
    yield p
    p.cancel_all()


def test_a_job_that_finishes(qtbot, panel):
    events = []
    job = panel.start(
        "count", [sys.executable, "-c", PROGRESS.format(n=5, sleep=0.01)], on_event=events.append
    )
    with qtbot.waitSignal(panel.jobFinished, timeout=15000) as sig:
        pass
    entry = sig.args[0]
    assert entry.state == "succeeded" and entry.done == entry.total == 5
    row = panel.rows[job.entry.id]
    assert row.bar.value() == 1000 and "finished" in row.status.text()
    assert not row.btn_cancel.isEnabled()
    assert [e["event"] for e in events].count("progress") == 5
    assert not panel.empty.isVisible()


def test_a_finished_job_reads_100_percent_even_without_progress_events(qtbot, panel):
    """Issue 22.8: finished jobs showed "0 %" (a job that reported no progress, or only a fraction of 0)."""
    quiet = "import json; print(json.dumps({'event': 'progress', 'fraction': 0.0})); print('{\"event\": \"done\"}')"
    for argv in ([sys.executable, "-c", 'print(\'{"event": "done"}\')'], [sys.executable, "-c", quiet]):
        job = panel.start("quiet", argv)
        with qtbot.waitSignal(panel.jobFinished, timeout=15000):
            pass
        row = panel.rows[job.entry.id]
        assert job.entry.state == "succeeded"
        assert row.bar.value() == 1000 and row.bar.text() == "100%", row.bar.text()


def test_a_job_that_is_cancelled(qtbot, panel):
    job = panel.start("slow", [sys.executable, "-c", PROGRESS.format(n=1000, sleep=0.05)])
    qtbot.waitUntil(lambda: job.entry.done >= 2, timeout=15000)
    row = panel.rows[job.entry.id]
    with qtbot.waitSignal(panel.jobFinished, timeout=10000):
        row.btn_cancel.click()
    assert job.entry.state == "cancelled" and job.entry.done < 1000
    assert "Cancelled" in row.status.text()


def test_a_failed_job_shows_its_error_and_log(qtbot, panel):
    script = (
        "import json, sys\n"
        "print(json.dumps({'event': 'progress', 'fraction': 0.5}), flush=True)\n"
        "print('Traceback: model file is corrupt', file=sys.stderr, flush=True)\n"
        "print(json.dumps({'event': 'error', 'message': 'model.safetensors: not a model'}), flush=True)\n"
        "sys.exit(1)\n"
    )
    job = panel.start("bad", [sys.executable, "-c", script])
    with qtbot.waitSignal(panel.jobFinished, timeout=15000):
        pass
    row = panel.rows[job.entry.id]
    assert job.entry.state == "failed" and job.entry.exit_code == 1
    assert "model.safetensors: not a model" in row.status.text().replace("\u200b", "")  # break opportunities
    assert "Traceback: model file is corrupt" in job.entry.log_text
    row.show_log()
    from PySide6.QtWidgets import QPlainTextEdit

    assert row._log_dialog.isVisible()
    assert "corrupt" in row._log_dialog.findChild(QPlainTextEdit).toPlainText()


def test_a_command_that_does_not_exist_fails_cleanly(qtbot, panel):
    job = panel.start("missing", ["/nonexistent/program"])
    qtbot.waitUntil(lambda: job.entry.state == "failed", timeout=5000)
    assert "/nonexistent/program" in job.entry.error  # named, whether the OS or `nice` reports it
