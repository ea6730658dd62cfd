"""Results of background work reach the GUI thread one per turn of the event loop, and the screen
repaints between them (issue 21: opening a 30-minute video ran its metadata, tracks and labels callbacks and their
repaints in one turn, a 200 ms stall)."""

from __future__ import annotations

import threading


def test_results_that_arrive_together_run_with_a_repaint_between(qtbot):
    from PySide6.QtWidgets import QWidget

    from endoreview.ui.tasks import TaskRunner

    log: list[str] = []

    class Canvas(QWidget):
        def paintEvent(self, ev):  # noqa: N802 - Qt API
            log.append("paint")

    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.show()
    qtbot.waitExposed(canvas)
    qtbot.wait(50)
    log.clear()
    runner = TaskRunner(workers=3)
    gate = threading.Event()
    finished = threading.Barrier(4)

    def work(name: str) -> str:
        gate.wait(10)
        finished.wait(10)  # all three results are posted to the GUI thread at the same moment
        return name

    def done(name: str) -> None:
        log.append(name)
        canvas.update()  # what a callback that changes the screen does

    try:
        for name in ("info", "tracks", "labels"):
            runner.submit(name, work, name, on_done=done)
        gate.set()
        finished.wait(10)
        qtbot.waitUntil(lambda: "labels" in log, timeout=10000)
        qtbot.wait(50)
        results = [x for x in log if x != "paint"]
        assert sorted(results) == ["info", "labels", "tracks"]
        first, second, third = (log.index(x) for x in results)
        assert "paint" in log[first:second] and "paint" in log[second:third], log
    finally:
        runner.shutdown()


def test_a_failing_callback_does_not_hold_back_the_results_after_it(qtbot):
    from endoreview.ui.tasks import TaskRunner

    runner = TaskRunner(workers=1)
    got: list[str] = []

    def boom(_value: str) -> None:
        raise RuntimeError("a bug in one callback")

    try:
        runner.submit("first", lambda: "first", on_done=boom)
        runner.submit("second", lambda: "second", on_done=got.append)
        qtbot.waitUntil(lambda: got == ["second"], timeout=10000)
        assert runner.busy == 0
    finally:
        runner.shutdown()


def test_workers_run_nicer_than_the_gui_thread(qtbot):
    """The reads the screen waits on (tracks, labels) run a little nicer than the GUI thread, which then gets a
    core first when both want one (issue 21: opening a 30-minute video on 2 cores)."""
    import os
    import sys

    import pytest

    from endoreview.media.priority import READ_NICE
    from endoreview.ui.tasks import TaskRunner

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    runner = TaskRunner(workers=1)
    got: list[int] = []
    try:
        runner.submit(
            "nice", lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), on_done=got.append
        )
        qtbot.waitUntil(lambda: bool(got), timeout=10000)
        gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert got == [min(19, gui + READ_NICE)] and got[0] > gui
    finally:
        runner.shutdown()
