"""Start the desktop app: ``run_app(args)`` (called by ``endoreview`` with argparse args demo, reviewer, db, paths).

Start-up does only what the first window needs: Qt and the library's widgets. The database is opened, the library
listed and the demo set up on worker threads after the window is on screen; pyqtgraph and the Player tab follow once
the library is listed (:meth:`MainWindow.review_widgets`); torch is never imported here (models run in job
subprocesses).

``ENDOREVIEW_EXIT_AFTER_STARTUP=1`` prints one JSON line (start-up time, whether torch was imported) once the
window is shown and the event loop runs, then quits: used by tests and ``benchmarks/ui_stall.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

_T0 = time.perf_counter()


def import_pyqtgraph() -> Any:
    """Import pyqtgraph without its optional CUDA probe, configured for the app (safe on a worker thread: the
    main window imports it there once the library is listed, and builds its widgets on the GUI thread).

    ``pyqtgraph.widgets.RawImageWidget`` tries ``from cuda.bindings import runtime`` at import; with torch's CUDA
    wheels installed that costs ~0.35 s of start-up for a widget we never use, and the app process never needs
    CUDA (models run in job subprocesses). The probe is made to fail only while pyqtgraph is imported.
    """
    if "pyqtgraph" in sys.modules:
        return sys.modules["pyqtgraph"]
    blocked = [m for m in ("cuda", "cuda.bindings", "cupy") if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]  # makes ``import m`` raise ImportError
    try:
        import pyqtgraph
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    # frames are row-major numpy arrays; overlays are drawn antialiased (the timeline's lanes turn it off per curve)
    pyqtgraph.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    return pyqtgraph


def apply_theme(app: Any, text_size: int = 0) -> None:
    """A dark Fusion theme (video review happens in dim rooms; overlays are tuned for a dark surround), and the text
    size (``text_size``: Settings ▸ Text size, 0 = automatic for the screen)."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(30, 30, 36), QColor(40, 40, 48), QColor(232, 232, 238)
    for role, col in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor(46, 46, 56)),
        (QPalette.ColorRole.ToolTipBase, QColor(20, 20, 26)),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor(52, 52, 62)),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.Highlight, QColor(0, 150, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.PlaceholderText, QColor(150, 150, 160)),
        (QPalette.ColorRole.Link, QColor(0, 229, 255)),
    ):
        pal.setColor(role, col)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 130))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 130))
    app.setPalette(pal)
    # readable text on large monitors the OS does not scale (Settings ▸ Text size; endoreview.ui.scale decides)
    from endoreview.ui.scale import apply_text_size

    apply_text_size(app, text_size)


def ensure_app(argv: list[str] | None = None) -> Any:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QGuiApplication

        # the OS's fractional display scale (125 %, 150 %) as it is, not rounded to 100 % or 200 % (endoreview.ui.scale)
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv or [sys.argv[0]])
    app.setApplicationName("EndoReview")
    app.setOrganizationName("EndoReview")
    return app


#: how long a thread running Python keeps the interpreter lock while another waits for it (Python's default is
#: 5 ms). The GUI thread gives the lock up around every Qt call it makes and waits again to come back, so with a
#: worker busy in Python (reading tracks or suggestions, decoding) each of those returns cost up to 5 ms: a 23 ms
#: zoom step of the 30-minute timeline took 108 ms of wall time beside one busy thread, 54 ms at 1 ms.
SWITCH_INTERVAL_S = 0.001
SETTLE_AFTER_OPEN_MS = 1000  # an opened video's heap is frozen this long after its tracks arrive


#: how often the GUI thread runs the garbage collector while a main window is open (automatic collection is off)
GC_INTERVAL_MS = 1000


def collect_on_gui_thread(win: Any) -> Any:
    """Turn the interpreter's automatic garbage collection off while ``win`` is open and collect on the GUI thread
    instead, every :data:`GC_INTERVAL_MS`, the generations that are due by the interpreter's own thresholds.

    A collection runs on whichever thread's allocation triggers it. On a worker thread (reading tracks, decoding,
    saving) it destroys the Qt objects caught in reference cycles - widgets and graphics items the timeline and
    overlays replace - while the GUI thread destroys others, and PySide deadlocks between a Qt mutex and the
    interpreter lock (the test suite hung on exactly that). With most of the heap frozen (:func:`settle_heap`) a
    collection here costs a few milliseconds. Automatic collection comes back when the window has closed."""
    import gc

    from PySide6.QtCore import QEvent, QObject, QTimer

    thresholds = gc.get_threshold()

    def due() -> None:
        counts, gen = gc.get_count(), -1
        while gen < 2 and counts[gen + 1] > thresholds[gen + 1]:
            gen += 1
        if gen >= 0:
            gc.collect(gen)

    class Collector(QObject):
        def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 - Qt API
            if ev.type() == QEvent.Type.Close:
                QTimer.singleShot(0, self.closed)  # a close the window refused (jobs running) leaves it open
            return False

        def closed(self) -> None:
            if not win.isVisible():
                timer.stop()
                gc.enable()

    collector = Collector(win)
    timer = QTimer(collector)
    timer.timeout.connect(due)
    win.installEventFilter(collector)
    gc.disable()
    timer.start(GC_INTERVAL_MS)
    return collector


def settle_heap(unfreeze: bool = True) -> None:
    """Take every object alive now out of the garbage collector's generations (``gc.freeze``): what start-up and an
    opened video's tracks build lives until the app quits or another video opens, and a full collection walks every
    tracked object while holding the interpreter lock, on whichever thread triggered it: on the 30-minute analysed
    video the app's ~130,000 objects made each one a 60-200 ms stall of the GUI thread (``benchmarks/ui_stall.py``
    reports the collections of each phase). Frozen objects are still freed by reference counting; what was frozen
    before is unfrozen and collected first (one full collection per call), so no cycle is kept for good."""
    import gc

    if unfreeze:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def spin(cond: Any, timeout: float, step: float = 0.001) -> bool:
    """Run the Qt event loop until ``cond()`` is true (True) or ``timeout`` seconds passed (False), sleeping ``step``
    between rounds: how scripts that drive the app (benchmarks, screenshots) wait for it."""
    app = ensure_app()
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(step)
    return False


@dataclass
class AppParts:
    """What the app is made of, built once by :func:`compose` and handed to :class:`MainWindow`, which passes each
    controller the parts it uses.

    ``services``: the database and every service on it (:class:`~endoreview.services.app.AppServices`: opened on a
    worker thread once the window shows; ``services.jobs`` is the job launcher); ``backend``: the bundle of those
    services once open, every call refused on the GUI thread; ``library_views`` and ``player_views``: the library's
    and player's view models over them (:mod:`endoreview.ui.views`); ``runner``: the worker threads
    blocking calls run on; ``media``: the queue that opens videos off the GUI thread (proxies, thumbnails, through
    :mod:`endoreview.media`); ``cache``: the player's decoded-frame cache."""

    services: Any
    backend: Any
    library_views: Any
    player_views: Any
    runner: Any
    media: Any
    cache: Any

    @property
    def launcher(self) -> Any:
        """The job launcher (:class:`~endoreview.services.jobs.JobService`)."""
        return self.services.jobs


def compose(
    db_url: str | None = None,
    reviewer: str | None = None,
    job_module: str | None = None,
    cache_bytes: int = 768 * 1024 * 1024,
) -> AppParts:
    """The composition root: builds the app's parts once (nothing opens the database yet). The saved Settings give the
    reviewer and database where ``db_url`` / ``reviewer`` (command line) and the environment gave none."""
    from endoreview.media.cache import FrameCache
    from endoreview.media.opener import use_probe_cache
    from endoreview.services.app import AppServices
    from endoreview.services.jobs import JOBS_MODULE
    from endoreview.ui.backend import Backend
    from endoreview.ui.finetune.attach import apply_settings
    from endoreview.ui.proxies import MediaQueue
    from endoreview.ui.tasks import TaskRunner
    from endoreview.ui.views import LibraryViews, PlayerViews

    use_probe_cache()
    services = AppServices(db_url, reviewer, job_module or JOBS_MODULE)
    apply_settings(services)
    backend = Backend(services)
    player_views = PlayerViews(backend)
    return AppParts(
        services=services,
        backend=backend,
        library_views=LibraryViews(backend, player_views),
        player_views=player_views,
        runner=TaskRunner(workers=2),
        media=MediaQueue(),
        cache=FrameCache(cache_bytes),
    )


def create_main_window(args: Any, job_module: str | None = None) -> Any:
    """The app's configured, not yet shown main window (needs a QApplication) on the parts :func:`compose` builds
    from ``args`` (db, reviewer). ``job_module``: the entry module of job processes (default ``endoreview.jobs``)."""
    from endoreview.media.guard import mark_gui_thread
    from endoreview.ui.icons import app_icon
    from endoreview.ui.main_window import MainWindow

    mark_gui_thread()
    app = ensure_app()
    from endoreview.services.app_settings import load_settings

    apply_theme(app, load_settings().text_size)
    app.setWindowIcon(app_icon())
    parts = compose(getattr(args, "db", None), getattr(args, "reviewer", None), job_module)
    win = MainWindow(parts, error_reporting=True)
    tune_interpreter(win)
    return win


def tune_interpreter(win: Any) -> None:
    """The interpreter's side of a responsive GUI thread, for the life of ``win``: start-up's objects frozen out of
    the collector (:func:`settle_heap`), garbage collected on the GUI thread only (:func:`collect_on_gui_thread`), the
    :data:`SWITCH_INTERVAL_S` switch interval once the library is listed (during start-up the GUI thread and the
    worker opening the database only hand the lock over more often: +0.2-0.3 s to a listed library at 1 ms), and an
    opened video's heap frozen :data:`SETTLE_AFTER_OPEN_MS` after its tracks arrive (its first frame and overlays
    are on screen by then). The first video's freeze leaves start-up's objects frozen (they live as long as the
    app: ~60 ms instead of ~90-120 on the 30-minute video); from the second on, the previous video's are collected.
    Reloads while a job streams results freeze nothing."""
    from PySide6.QtCore import QTimer

    settle_heap()
    win.gc_collector = collect_on_gui_thread(win)

    def listed(_rows: Any) -> None:
        win.library_ctl.refreshed.disconnect(listed)
        sys.setswitchinterval(SWITCH_INTERVAL_S)

    win.library_ctl.refreshed.connect(listed)
    opened, settled = [False], [0]
    win.review_ctl.videoOpened.connect(lambda _info: opened.__setitem__(0, True))

    def tracks_loaded(_tracks: Any) -> None:
        if opened[0]:
            opened[0] = False
            settled[0] += 1
            first = settled[0] == 1
            QTimer.singleShot(SETTLE_AFTER_OPEN_MS, lambda: settle_heap(unfreeze=not first))

    win.review_ctl.tracksLoaded.connect(tracks_loaded)


def run_app(args: Any) -> int:
    logging.basicConfig(
        level=os.environ.get("ENDOREVIEW_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    app = ensure_app([sys.argv[0]])
    win = create_main_window(args)
    win.fit_to_screen()  # never larger than the screen (1366x768: maximised, status bar in sight)
    win.show()
    win.start(demo=bool(getattr(args, "demo", False)), paths=list(getattr(args, "paths", None) or []))
    if os.environ.get("ENDOREVIEW_EXIT_AFTER_STARTUP"):
        from PySide6.QtCore import QTimer

        def report() -> None:
            import gc
            import resource

            ru = resource.getrusage(resource.RUSAGE_SELF)
            print(
                json.dumps(
                    {
                        "event": "startup",
                        "startup_s": round(time.perf_counter() - _T0, 3),
                        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
                        "torch_imported": "torch" in sys.modules,
                        # the Player tab's plotting library follows the library's listing (MainWindow._warm_up)
                        "pyqtgraph_imported": "pyqtgraph" in sys.modules,
                        "gc_frozen_objects": gc.get_freeze_count(),
                        "switch_interval_s": sys.getswitchinterval(),
                    }
                ),
                flush=True,
            )
            app.quit()

        QTimer.singleShot(0, report)
    code = app.exec()
    win.backend.close()
    return int(code)
