"""The app's open services as the UI holds them: :class:`Backend` is a thin bundle, built once by the composition
root (:func:`endoreview.ui.app.compose`), of the services :class:`~endoreview.services.app.AppServices` opens on
a worker thread (its ``store``, ``library``, ``projects``, ``labels`` and ``review``, each call refused on the GUI
thread by :func:`endoreview.media.guard.check_off_gui_thread`) and the open ``project``. It holds no view logic:
the library's and player's view models are :mod:`endoreview.ui.views`; launching a prediction is the job
launcher's (:meth:`endoreview.services.jobs.JobService.predict`).
"""

from __future__ import annotations

import logging
from typing import Any

from endoreview.media.guard import check_off_gui_thread
from endoreview.services.app import AppServices
from endoreview.services.jobs import JobService
from endoreview.ui.tasks import GuardedService

log = logging.getLogger(__name__)


class Backend:
    """The open services over ``services`` (the app's :class:`AppServices`); after :meth:`open` its ``store``,
    ``library``, ``projects``, ``labels`` and ``review`` are those services, each call refused on the GUI thread,
    and ``project`` is the open project."""

    def __init__(self, services: AppServices) -> None:
        self.services = services
        self.store: Any = None
        self.library: Any = None
        self.projects: Any = None
        self.labels: Any = None
        self.review: Any = None
        self.project: Any = None

    db_url = property(lambda self: self.services.db_url)
    reviewer = property(lambda self: self.services.reviewer)

    @property
    def jobs(self) -> JobService:
        """The job launcher (what to run for a job; cancel; reap)."""
        return self.services.jobs

    # ---- opening ------------------------------------------------------------------------------------------
    def open(self) -> str:
        """Open (create or upgrade) the database. Returns a short description for the status bar."""
        check_off_gui_thread("db", "open store")
        sv = self.services
        raw = sv.open()
        # every call through these refuses (strict) or records a call made on the GUI thread
        self.store = GuardedService(raw)
        self.library = GuardedService(sv.library)
        self.projects = GuardedService(sv.projects)
        self.labels = GuardedService(sv.labels)
        self.review = GuardedService(sv.review)
        self.project = self.projects.default_project()
        reaped = sv.jobs.reap()  # jobs whose process died with an earlier session are marked failed
        if reaped:
            log.info("%d job(s) of an earlier session ended unexpectedly", len(reaped))
        sv.library.migrate_folder_hashes()  # legacy per-process folder hashes -> deterministic ones
        return f"{self.store.reviewer} · {self.project.name}"

    def close(self) -> None:
        """Release the database connection pool (no query runs; safe at exit on any thread)."""
        self.services.close()
        self.store = None
