"""The main window: assembles the library, player, timeline and jobs panel and wires them to their controllers.

It holds no domain state and no logic beyond layout and menus: each editor has its own controller
(:class:`LibraryController`, :class:`ReviewController`, :class:`AnalysisController`, :class:`DemoController`).
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from endoreview import RESEARCH_NOTICE
from endoreview.media.opener import warm_up as warm_up_decoders
from endoreview.ui.analysis import AnalysisController
from endoreview.ui.demo_controller import DemoController
from endoreview.ui.finetune.attach import name_videos_in_logs, open_at
from endoreview.ui.finetune.controller import FinetuneController
from endoreview.ui.finetune.resume import ResumePanel
from endoreview.ui.icons import app_icon, icon
from endoreview.ui.jobs_panel import JobsPanel
from endoreview.ui.library import LibraryWidget
from endoreview.ui.library_controller import LibraryController
from endoreview.ui.player.controller import PlayerController
from endoreview.ui.registry.controller import RegistryController
from endoreview.ui.review_controller import ReviewController
from endoreview.ui.scale import em
from endoreview.ui.shortcuts import ShortcutHelpDialog, bind

if TYPE_CHECKING:
    from endoreview.ui.app import AppParts
    from endoreview.ui.editing import EditController
    from endoreview.ui.player.widget import PlayerWidget
    from endoreview.ui.timeline import TimelineWidget

log = logging.getLogger(__name__)


class LayoutBoundary(QWidget):
    """One child widget filling this one, with no layout in between, so that layout requests from inside the child
    stop here. Each ``QLabel.setText`` asks its layout to be redone, and each layout that is redone asks its parent
    to redo its own, up to the window; a ``QTabWidget`` answers that by repainting its whole page. While a video
    played or was scrubbed, the time counter and the class banner changing every frame repainted the Player tab
    whole (every button, the frame view and the timeline) at each frame: 20-60 ms of the GUI thread each time. The
    child's size hints are read through, but changes to them are not announced (the tab fills the window anyway)."""

    def __init__(self, inner: QWidget) -> None:
        super().__init__()
        self.inner = inner
        inner.setParent(self)

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        self.inner.setGeometry(self.rect())
        super().resizeEvent(ev)

    def sizeHint(self) -> Any:  # noqa: N802 - Qt API
        return self.inner.sizeHint()

    def minimumSizeHint(self) -> Any:  # noqa: N802 - Qt API
        return self.inner.minimumSizeHint()


# how long quitting waits for stopped jobs to record their state before it kills them (a killed job's row is marked
# failed at the next start and a fine-tune stays resumable)
JOB_STOP_GRACE_MS = 8000


class MainWindow(QMainWindow):
    def __init__(self, parts: AppParts, error_reporting: bool = False) -> None:
        """``parts``: the app's services, view models, task runner, media queue and frame cache, built once by
        :func:`endoreview.ui.app.compose`; each controller gets the parts it uses. ``error_reporting``: unexpected
        errors open the error dialog (the app turns it on; tests that build a window leave it off and see the
        exception)."""
        super().__init__()
        self.setWindowTitle("EndoReview — research use only, not a medical device")
        self.setWindowIcon(app_icon())
        self.services, self.backend = parts.services, parts.backend
        self._quit_confirmed = False
        self.runner, self.media = parts.runner, parts.media
        self.runner.setParent(self)
        self.media.setParent(self)
        self.edit_ctl: EditController | None = None

        # widgets (the player page's frame view and timeline are built after the library is listed, or when first
        # needed: :meth:`review_widgets`; pyqtgraph and their construction were a third of the start-up)
        self.library = LibraryWidget()
        self.player = PlayerController(parts.cache, self)
        self._player_widget: PlayerWidget | None = None
        self._timeline: TimelineWidget | None = None
        # the Player tab: holds the splitter (frame view over timeline) once built, behind a layout boundary
        self.review_page = QWidget()
        QVBoxLayout(self.review_page).setContentsMargins(0, 0, 0, 0)
        self.review_tab = LayoutBoundary(self.review_page)
        self.jobs = JobsPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.library, icon("library"), "Library")
        self.tabs.addTab(self.review_tab, icon("play"), "Player")
        self.setCentralWidget(self.tabs)
        dock = QDockWidget("Jobs", self)
        dock.setObjectName("jobsDock")
        dock.setWidget(self.jobs)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.jobs_dock = dock
        dock.setMinimumWidth(em(self, 26))  # 300 px at 10 pt; grows with the text size
        self.notice = QLabel(
            RESEARCH_NOTICE.split(".")[0] + "."
        )  # the full sentence sits on every model output
        self.notice.setObjectName("researchNotice")
        self.notice.setStyleSheet("color:#ffb74d; padding-right: 8px;")
        self.notice.setToolTip(RESEARCH_NOTICE)

        # controllers
        self.library_ctl = LibraryController(parts.library_views, self.runner, self.media, self.library, self)
        self.review_ctl = ReviewController(parts.player_views, self.runner, self.media, self.player, self)
        self.analysis_ctl = AnalysisController(parts.launcher, self.runner, self.jobs, self.review_ctl, self)
        self.demo_ctl = DemoController(self.services, self.runner, self.library_ctl, self.analysis_ctl, self)
        for ctl in (self.library_ctl, self.review_ctl, self.analysis_ctl, self.demo_ctl):
            ctl.message.connect(self.show_message)
        self.library.openRequested.connect(self.open_video)
        self.tabs.currentChanged.connect(self._on_tab)
        self.library.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.library.table.customContextMenuRequested.connect(self._library_menu)
        self.library.demoRequested.connect(self.demo_ctl.start)
        self.review_ctl.videoOpened.connect(lambda info: self._set_title(info.name))
        self.review_ctl.videoMissing.connect(lambda info: self.show_message(f"File not found: {info.path}"))
        self.library_ctl.refreshed.connect(self._on_library)
        self.analysis_ctl.finished.connect(lambda _e: self.library_ctl.refresh())
        self.analysis_ctl.videoAnalysed.connect(lambda _v: self.library_ctl.refresh())
        self.demo_ctl.noticeChanged.connect(self.library.set_notice)
        self.analysis_ctl.started.connect(lambda _job: self.show_jobs())
        self.analysis_ctl.noModel.connect(self.library.set_notice)
        self._build_actions()
        self._bind_keys()
        self._build_learning_loop(error_reporting)  # fine-tune, models, settings, about
        self.resize(1280, 800)  # run_app fits it to the screen before showing it (fit_to_screen)

    def fit_to_screen(self, available: QRect | None = None) -> None:
        """The first size: most of the screen's free area (``available``, default: the screen's), maximised where
        1280x800 and its title bar do not fit (a 1366x768 workstation), so the status bar is never below the screen."""
        if available is None:
            screen = self.screen()
            if screen is None:
                self.resize(1280, 800)
                return
            available = screen.availableGeometry()
        title = 2 * self.fontMetrics().height()  # the window manager's title bar and frame, roughly
        if available.width() < 1280 or available.height() < 800 + title:
            self.resize(available.width(), available.height() - title)
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)
            return
        w = max(1280, int(available.width() * 0.85))
        h = max(800, int((available.height() - title) * 0.85))
        self.resize(w, h)
        self.move(
            available.center().x() - w // 2, available.y() + max(0, (available.height() - title - h) // 2)
        )

    @property
    def player_widget(self) -> PlayerWidget:
        """The frame view with its transport and overlays (built on first use: :meth:`review_widgets`)."""
        return self.review_widgets()[0]

    @property
    def timeline(self) -> TimelineWidget:
        return self.review_widgets()[1]

    def review_widgets(self) -> tuple[PlayerWidget, TimelineWidget]:
        """Build the Player tab once: the frame view over the timeline, attached to the review controller, with the
        player's keys. The app builds it right after the library is listed (pyqtgraph imported on a worker first:
        :meth:`_warm_up`); opening a video or showing the tab sooner builds it then."""
        if self._player_widget is not None and self._timeline is not None:
            return self._player_widget, self._timeline
        from endoreview.ui.app import import_pyqtgraph

        import_pyqtgraph()
        from endoreview.ui.player.widget import PlayerWidget
        from endoreview.ui.timeline import TimelineWidget

        pw, tl = PlayerWidget(self.player), TimelineWidget()
        self._player_widget, self._timeline = pw, tl
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(pw)
        split.addWidget(tl)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)
        timeline_h = max(
            230, int(self.height() * 0.26)
        )  # the timeline grows with the screen (its lane labels)
        split.setSizes([max(200, self.height() - timeline_h), timeline_h])
        self.review_page.layout().addWidget(split)
        self.review_ctl.attach(pw, tl)
        self.review_ctl.videoOpened.connect(lambda info: pw.set_video_name(info.name))
        pw.fullscreenRequested.connect(self.toggle_fullscreen)
        tl.setVisible(not self.isFullScreen())
        self._bind_player_keys(pw)
        return pw, tl

    def editing(self) -> EditController:
        """The correction tools (built once: after the library is listed, or when a video opens first): the tool bar
        left of the player, the review-queue dock, the timeline's segment editing and their keys."""
        if self.edit_ctl is None:
            from endoreview.ui.editing import build_editing

            self.edit_ctl = build_editing(self)
        return self.edit_ctl

    def _build_learning_loop(self, error_reporting: bool) -> None:
        """The learning loop's entries: a Models menu (Fine-tune…, Models…), File ▸ Settings…, Help ▸ About, the
        stopped-fine-tunes section with Resume buttons at the top of the jobs panel, and the error dialog."""
        services = self.services
        store_fn = lambda: services.store  # noqa: E731 - called on worker threads only
        ft = FinetuneController(services, self.runner, self.jobs, self)
        reg = RegistryController(
            services, self.runner, self.jobs, open_frame=lambda v, f: open_at(self, v, f), parent=self
        )
        resume = ResumePanel(store_fn, self.runner)
        self.jobs.layout().insertWidget(0, resume)
        resume.resumeRequested.connect(ft.resume)
        for ctl in (ft, reg):
            ctl.message.connect(self.show_message)
        ft.started.connect(lambda _job: self.show_jobs())
        ft.finished.connect(lambda _r: resume.refresh())
        ft.openRegistry.connect(lambda vid: reg.open(self, select=vid))
        self.library_ctl.refreshed.connect(lambda _rows: resume.refresh() if not resume.jobs else None)
        self.finetune_ctl, self.registry_ctl, self.finetune_resume = ft, reg, resume

        def act(text: str, slot: Any, shortcut: str | None = None) -> QAction:
            a = QAction(text, self)
            a.triggered.connect(slot)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            return a

        self.act_finetune = act("Fine-tune…", lambda: ft.open_dialog(self), "Ctrl+Shift+T")
        self.act_models = act("Models…", lambda: reg.open(self), "Ctrl+Shift+M")
        models = self.menuBar().addMenu("&Models")
        models.addAction(self.act_finetune)
        models.addAction(self.act_models)
        self.toolbar.insertAction(self.act_jobs, self.act_finetune)

        def settings() -> None:
            from endoreview.ui.settings import SettingsDialog

            self._settings_dialog = SettingsDialog(self.runner, parent=self)
            self._settings_dialog.show()

        def about() -> None:
            from endoreview.ui.about import AboutDialog

            self._about_dialog = AboutDialog(self.runner, store_fn if services.is_open else None, self)
            self._about_dialog.show()

        self.act_settings = act("Settings…", settings, "Ctrl+,")
        self.file_menu.insertAction(self.quit_action, self.act_settings)
        self.act_about = act("About EndoReview", about)
        self.help_menu.addAction(self.act_about)
        if error_reporting:
            from endoreview.ui.about import install_error_handling

            self.error_reporter = install_error_handling(self)
            # on a worker: resolving every video's path is file-system calls the listing need not wait for
            self.library_ctl.refreshed.connect(
                lambda rows: self.runner.submit("name videos in logs", name_videos_in_logs, list(rows))
            )

    # ---- actions ----------------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.setMovable(False)
        self.addToolBar(tb)
        self.toolbar = tb

        def act(text: str, name: str, slot, shortcut: str | None = None) -> QAction:
            a = QAction(icon(name), text, self)
            a.triggered.connect(slot)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            return a

        self.act_import = act("Import files…", "import", lambda: self.library_ctl.ask_import_files(self))
        self.act_import_folder = act(
            "Import folder…", "folder", lambda: self.library_ctl.ask_import_folder(self)
        )
        self.act_analyse = act("Analyse", "analyse", self.analyse_selection)
        self.act_demo = act("Open demo", "demo", self.demo_ctl.start)
        self.act_help = act("Shortcuts", "help", self.show_help)
        self.act_jobs = self.jobs_dock.toggleViewAction()
        self.act_jobs.setIcon(icon("jobs"))
        for a in (
            self.act_import,
            self.act_import_folder,
            self.act_analyse,
            self.act_demo,
            self.act_jobs,
            self.act_help,
        ):
            tb.addAction(a)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        tb.addWidget(self.notice)
        self.jobs_dock.hide()  # shown when a job starts (or from the toolbar)
        m = self.file_menu = self.menuBar().addMenu("&File")
        m.addAction(self.act_import)
        m.addAction(self.act_import_folder)
        self.act_relink = act("Find moved files…", "folder", lambda: self.library_ctl.ask_relink(self))
        m.addAction(self.act_relink)
        self.act_export = act("Export labels…", "folder", self.show_export)
        m.addAction(self.act_export)
        m.addSeparator()
        self.quit_action = quit_action = m.addAction("Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        m = self.menuBar().addMenu("&Video")
        m.addAction(self.act_analyse)
        m.addAction(self.act_demo)
        m = self.help_menu = self.menuBar().addMenu("&Help")
        m.addAction(self.act_help)

    def _bind_keys(self) -> None:
        app_keys = {
            "app.library": lambda: self.tabs.setCurrentIndex(0),
            "app.review": lambda: self.tabs.setCurrentIndex(1),
            "app.help": self.show_help,
            "app.analyse": self.analyse_selection,
        }
        self.shortcuts = bind(self, app_keys)
        self.act_import.setShortcut(QKeySequence("Ctrl+I"))

    def _bind_player_keys(self, pw: PlayerWidget) -> None:
        p, r = self.player, self.review_ctl

        def toggle(chk) -> None:
            chk.setChecked(not chk.isChecked())

        def play_faster() -> None:
            p.faster() if p.playing else p.play()

        player_keys = {
            "player.toggle": p.toggle_play,
            "player.prev": lambda: p.step(-1),
            "player.next": lambda: p.step(1),
            "player.back10": lambda: p.step(-10),
            "player.fwd10": lambda: p.step(10),
            "player.slower": p.slower,
            "player.pause": p.pause,
            "player.faster": play_faster,
            "player.home": lambda: p.seek(0),
            "player.end": lambda: p.seek(p.frame_count - 1),
            "view.zoom_in": lambda: pw.view.zoom(1.25),
            "view.zoom_out": lambda: pw.view.zoom(0.8),
            "view.fit": pw.view.fit,
            "view.fullscreen": self.toggle_fullscreen,
            "view.masks": lambda: toggle(pw.chk_masks),
            "view.boxes": lambda: toggle(pw.chk_boxes),
            "review.next_disagreement": lambda: r.next_disagreement(True),
            "review.prev_disagreement": lambda: r.next_disagreement(False),
            "review.next_uncertain": lambda: r.next_uncertain(True),
            "review.prev_uncertain": lambda: r.next_uncertain(False),
        }
        self.shortcuts += bind(self.review_page, player_keys, Qt.ShortcutContext.WidgetWithChildrenShortcut)

    # ---- behaviour --------------------------------------------------------------------------------------------
    def start(self, demo: bool = False, paths: list[str] | None = None) -> None:
        """Open the database in the background, then fill the library (and set up the demo / import paths)."""
        self.show_message("Opening the library…")

        def opened(desc: str) -> None:
            self.show_message(f"Library ready ({desc}).")
            self.library_ctl.ready = True
            self.library_ctl.refreshed.connect(self._warm_up)
            self.library_ctl.refresh()
            if demo:
                self.demo_ctl.start()
            elif paths:
                self.library_ctl.imported.connect(self._open_first_import)
                self.library_ctl.import_paths(list(paths))

        def open_store() -> None:
            self.runner.submit("open store", self.backend.open, on_done=opened, on_error=self._store_failed)

        # after the first paint: the database modules take a while to import and share the interpreter lock
        QTimer.singleShot(50, open_store)

    def _warm_up(self, _rows: list) -> None:
        """Once the library is listed: import pyqtgraph and the decoders on a worker thread, then build the Player
        tab and the correction tools, so the first video opens without waiting for them."""
        from endoreview.ui.app import import_pyqtgraph

        self.library_ctl.refreshed.disconnect(self._warm_up)

        def imported(_pg: object) -> None:
            QTimer.singleShot(
                0, self.editing
            )  # the player page and correction tools, now the library is usable

        self.runner.submit(
            "import pyqtgraph", import_pyqtgraph, on_done=imported, on_error=lambda _e: imported(None)
        )
        self.runner.submit("warm up decoders", warm_up_decoders)

    def _open_first_import(self, summary) -> None:  # ImportSummary
        """``endoreview VIDEO…``: open the first video given on the command line once it is imported."""
        self.library_ctl.imported.disconnect(self._open_first_import)
        if summary.video_ids:
            self.open_video(summary.video_ids[0])

    def _store_failed(self, exc: BaseException) -> None:
        self.library.set_empty_text(f"The label database could not be opened:\n{exc}")
        self.show_message(f"Database error: {exc}")

    def _on_library(self, rows: list) -> None:
        if any(r.finding for r in rows) and not self.demo_ctl.notice:
            self.library.set_notice(f"Model findings are shown. {RESEARCH_NOTICE}")
        if not rows and not self.demo_ctl.running:
            self.library.set_empty_text(
                "The library is empty.\nImport videos (Ctrl+I or drop files here), or open the demo: "
                "synthetic endoscopy videos analysed by the bundled demo model.",
                offer_demo=True,
            )

    def _library_menu(self, pos) -> None:  # QPoint
        ids = self.library.selected_ids()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction(icon("play"), "Open", lambda: self.open_video(ids[0]))
        menu.addAction(
            icon("analyse"), f"Analyse {len(ids)} video(s)", lambda: self.analysis_ctl.analyse(ids)
        )
        menu.addAction(icon("folder"), "Find moved files…", lambda: self.library_ctl.ask_relink(self))
        menu.popup(self.library.table.viewport().mapToGlobal(pos))
        self._menu = menu

    def _on_tab(self, index: int) -> None:
        if index == 1:  # the player's keys act where the focus is: give it to the frame view
            self.editing()  # the page and its tools, if the tab is shown before they were built
            self.player_widget.view.setFocus(Qt.FocusReason.OtherFocusReason)

    def open_video(self, video_id: int) -> None:
        self.editing()  # the player page, and its tools follow the video from the start
        self.tabs.setCurrentIndex(1)
        self.player_widget.view.setFocus(Qt.FocusReason.OtherFocusReason)
        self.review_ctl.open_video(video_id)

    def analyse_selection(self) -> None:
        ids = self.library.selected_ids() if self.tabs.currentIndex() == 0 else []
        if not ids and self.review_ctl.info is not None:
            ids = [self.review_ctl.info.video_id]
        self.analysis_ctl.analyse(ids)

    def show_jobs(self) -> None:
        if not self.jobs_dock.isVisible():
            self.jobs_dock.show()
            self.resizeDocks(
                [self.jobs_dock], [max(em(self, 26), self.width() // 5)], Qt.Orientation.Horizontal
            )

    def show_help(self) -> None:
        dlg = ShortcutHelpDialog(self)
        dlg.show()
        self._help = dlg

    def show_export(self) -> None:
        """File → Export…: the command line's export with the library's selection preselected."""
        from endoreview.ui.export_dialog import ExportDialog

        ids = self.library.selected_ids() if self.tabs.currentIndex() == 0 else []
        if not ids and self.review_ctl.info is not None:
            ids = [self.review_ctl.info.video_id]
        self._export = ExportDialog(self.backend, self.runner, ids, self)
        self._export.finished_export.connect(lambda rep: self.show_message(self._export.status.text()))
        self._export.open()

    def show_message(self, text: str) -> None:
        log.info("%s", text)
        self.statusBar().showMessage(text, 15000)

    def _set_title(self, name: str) -> None:
        self.setWindowTitle(f"{name} — EndoReview (research use only, not a medical device)")

    def toggle_fullscreen(self) -> None:
        full = not self.isFullScreen()
        for w in (self.toolbar, self.menuBar(), self.statusBar(), self.jobs_dock, self.tabs.tabBar()):
            w.setVisible(not full)
        if self._timeline is not None:
            self._timeline.setVisible(not full)
        if full:
            self.tabs.setCurrentIndex(1)
            self.showFullScreen()
        else:
            self.showNormal()

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        if ev.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.toggle_fullscreen()
            return
        super().keyPressEvent(ev)

    def closeEvent(self, ev) -> None:  # noqa: N802
        running = self.jobs.running
        if running and not self._quit_confirmed:
            ev.ignore()  # asked first; the answer closes the window again (nothing blocks meanwhile)
            self.ask_quit(running)
            return
        self.jobs.stop_all(grace_ms=JOB_STOP_GRACE_MS)
        self.review_ctl.close_video()  # and its timers: nothing is read into a runner that is shutting down
        if self.edit_ctl is not None:
            self.edit_ctl.shutdown()
        self.player.close()
        self.media.stop()
        self.runner.shutdown()
        super().closeEvent(ev)
        # monitors, the model registry, comparisons: top-level windows that would keep the app (and its jobs) alive
        app = QApplication.instance()
        for w in app.topLevelWidgets() if app is not None else ():
            if w is not self and w.isVisible():
                w.close()
        self.services.release_instance_lock()  # another window may open this database now

    def ask_quit(self, running: list) -> QMessageBox:
        """Ask whether to stop the running jobs and quit (non-modal; "Stop jobs and quit" closes the window)."""
        titles = "".join(f"<li>{html.escape(j.entry.title)}</li>" for j in running)
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Quit EndoReview")
        box.setText(
            f"{len(running)} job{'s are' if len(running) != 1 else ' is'} still running:<ul>{titles}</ul>"
        )
        box.setInformativeText(
            "Quitting stops them cleanly: an analysis keeps every frame it has stored, and a fine-tune keeps its "
            "last finished epoch (resume it from the Jobs panel)."
        )
        stop = box.addButton("Stop jobs and quit", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stop)

        def answered(_code: int) -> None:
            if box.clickedButton() is stop:
                self._quit_confirmed = True
                self.close()

        box.finished.connect(answered)
        box.open()
        self.quit_box = box
        return box
