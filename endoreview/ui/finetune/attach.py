"""Helpers of the learning loop's entries in the main window (built by ``MainWindow._build_learning_loop``):
:func:`open_at` opens a video at a frame, :func:`apply_settings` applies the saved reviewer and database (the
composition root calls it), :func:`name_videos_in_logs` keeps patient file names out of logs."""

from __future__ import annotations

from typing import Any


def open_at(win: Any, video_id: int, frame: int) -> None:
    """Open ``video_id`` in the player and go to ``frame`` once it is open."""

    def opened(info: Any) -> None:
        win.review_ctl.videoOpened.disconnect(opened)
        if info.video_id == video_id:
            win.player.seek(int(frame))

    win.review_ctl.videoOpened.connect(opened)
    win.open_video(int(video_id))


def name_videos_in_logs(rows: list) -> None:
    """Log records name library videos ``<video ID>``, never by path or file name (which may identify a patient)."""
    from pathlib import Path

    from endoreview.jobs.runner import SCRUBBER

    for r in rows:
        SCRUBBER.register(int(r.video_id), Path(r.path))


def apply_settings(services: Any) -> None:
    """The saved reviewer and database (Settings dialog) on ``services`` (:class:`AppServices`) where the command line
    and environment gave none."""
    import os

    from endoreview.services.app_settings import database_url, load_settings, settings_path

    if not settings_path().is_file():
        return
    s = load_settings()
    if (
        services.db_url is None
        and not os.environ.get("ENDOREVIEW_DB_URL")
        and (s.sqlite_path or s.db_kind != "sqlite")
    ):
        services.db_url = database_url(s)
    if not services.reviewer and s.reviewer:
        services.reviewer = s.reviewer
