"""``attach_learning_loop(main_window)``: the learning loop's entries in the main window — a Models menu
(Fine-tune…, Models…), File ▸ Settings…, Help ▸ About, the stopped-fine-tunes section with Resume buttons at the
top of the jobs panel, and the error dialog. Keeps the main window's own code to one call."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QKeySequence

from endoreview.ui.finetune.controller import FinetuneController
from endoreview.ui.finetune.resume import ResumePanel
from endoreview.ui.registry.controller import RegistryController


def open_at(win: Any, video_id: int, frame: int) -> None:
    """Open ``video_id`` in the player and go to ``frame`` once it is open."""

    def opened(info: Any) -> None:
        win.review_ctl.videoOpened.disconnect(opened)
        if info.video_id == video_id:
            win.player.seek(int(frame))

    win.review_ctl.videoOpened.connect(opened)
    win.open_video(int(video_id))


def _name_videos_in_logs(rows: list) -> None:
    """Log records name library videos ``<video ID>``, never by path or file name (which may identify a patient)."""
    from pathlib import Path

    from endoreview.jobs.runner import SCRUBBER

    for r in rows:
        SCRUBBER.register(int(r.video_id), Path(r.path))


def _menu(win: Any, title: str) -> Any:
    for a in win.menuBar().actions():
        if a.menu() is not None and a.text().replace("&", "") == title:
            return a.menu()
    return win.menuBar().addMenu(f"&{title}")


def apply_settings(backend: Any) -> None:
    """The saved reviewer and database (Settings dialog) where the command line and environment gave none."""
    import os

    from endoreview.services.app_settings import database_url, load_settings, settings_path

    if not settings_path().is_file():
        return
    s = load_settings()
    if (
        backend.db_url is None
        and not os.environ.get("ENDOREVIEW_DB_URL")
        and (s.sqlite_path or s.db_kind != "sqlite")
    ):
        backend.db_url = database_url(s)
    if not backend.reviewer and s.reviewer:
        backend.reviewer = s.reviewer


def attach_learning_loop(win: Any, error_dialog: bool = False) -> FinetuneController:
    apply_settings(win.backend)
    store_fn = lambda: win.backend.services.store  # noqa: E731 - called on worker threads only
    ft = FinetuneController(win.backend, win.runner, win.jobs, win)
    reg = RegistryController(
        win.backend, win.runner, win.jobs, open_frame=lambda v, f: open_at(win, v, f), parent=win
    )
    resume = ResumePanel(store_fn, win.runner)
    win.jobs.layout().insertWidget(0, resume)
    resume.resumeRequested.connect(ft.resume)
    for ctl in (ft, reg):
        ctl.message.connect(win.show_message)
    ft.started.connect(lambda _job: win.show_jobs())
    ft.finished.connect(lambda _r: resume.refresh())
    ft.openRegistry.connect(lambda vid: reg.open(win, select=vid))
    win.library_ctl.refreshed.connect(lambda _rows: resume.refresh() if not resume.jobs else None)
    win.finetune_ctl, win.registry_ctl, win.finetune_resume = ft, reg, resume

    def act(text: str, slot: Any, shortcut: str | None = None) -> QAction:
        a = QAction(text, win)
        a.triggered.connect(slot)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        return a

    win.act_finetune = act("Fine-tune…", lambda: ft.open_dialog(win), "Ctrl+Shift+T")
    win.act_models = act("Models…", lambda: reg.open(win), "Ctrl+Shift+M")
    models = win.menuBar().addMenu("&Models")
    models.addAction(win.act_finetune)
    models.addAction(win.act_models)
    win.toolbar.insertAction(getattr(win, "act_jobs", None), win.act_finetune) if hasattr(
        win, "toolbar"
    ) else None

    def settings() -> None:
        from endoreview.ui.settings import SettingsDialog

        win._settings_dialog = SettingsDialog(win.runner, parent=win)
        win._settings_dialog.show()

    def about() -> None:
        from endoreview.ui.about import AboutDialog

        win._about_dialog = AboutDialog(win.runner, store_fn if win.backend.store is not None else None, win)
        win._about_dialog.show()

    file_menu = _menu(win, "File")
    win.act_settings = act("Settings…", settings, "Ctrl+,")
    quit_action = next((a for a in file_menu.actions() if a.text() == "Quit"), None)
    file_menu.insertAction(quit_action, win.act_settings)
    win.act_about = act("About EndoReview", about)
    _menu(win, "Help").addAction(win.act_about)
    if error_dialog:
        from endoreview.ui.about import install_error_handling

        win.error_reporter = install_error_handling(win)
        win.library_ctl.refreshed.connect(_name_videos_in_logs)
    return ft
