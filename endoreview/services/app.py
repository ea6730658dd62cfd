"""The app's services, built once: :class:`AppServices` is what the desktop app's composition root
(:func:`endoreview.ui.app.create_main_window`) hands to the UI.

``AppServices(db_url, reviewer, job_module)`` is cheap to make (nothing opens) so the window can appear at once;
:meth:`AppServices.open` (on a worker thread) opens the database and builds every service on it: the library,
projects, labels, review data, the job launcher (:class:`~endoreview.services.jobs.JobService`) and the model
registry. The UI reaches domain records and services only through this object (never the store module). Opening
takes the database's :class:`~endoreview.services.instance.InstanceLock`: a second app on the same database is
refused with a message that says so.
"""

from __future__ import annotations

import os
from typing import Any

from endoreview.services.instance import InstanceLock
from endoreview.services.jobs import JOBS_MODULE, JobService


class AppServices:
    def __init__(
        self, db_url: str | None = None, reviewer: str | None = None, job_module: str = JOBS_MODULE
    ) -> None:
        self.db_url = db_url
        self.reviewer = reviewer or os.environ.get("ENDOREVIEW_REVIEWER") or None
        self.job_module = job_module
        self.store: Any = None  # the open Store, handed to services on worker threads
        self.jobs = JobService(None, job_module=job_module)
        self.instance_lock: InstanceLock | None = None  # one app per database (see services.instance)

    @property
    def is_open(self) -> bool:
        return self.store is not None

    def open(self) -> Any:
        """Open (create or upgrade) the database and build the services on it. Returns the store."""
        from endoreview.services.editing import EditingService
        from endoreview.services.library import LibraryService
        from endoreview.services.projects import ProjectService
        from endoreview.services.registry import RegistryService
        from endoreview.services.review_data import ReviewData
        from endoreview.store import Store

        store = Store.open(self.db_url, reviewer=self.reviewer)
        try:
            self.instance_lock = InstanceLock(store.raw_url()).acquire()
        except BaseException:
            store.close()
            raise
        self.store = store
        self.library = LibraryService(store)
        from endoreview.services.app_settings import load_settings

        self.projects = ProjectService(store, load_settings().default_label_set)  # Settings → new projects
        self.labels = EditingService(store)
        self.review = ReviewData(store)
        self.registry = RegistryService(store)
        self.jobs.store = store
        return store

    def release_instance_lock(self) -> None:
        """Let another app open this database (this one is quitting)."""
        if self.instance_lock is not None:
            self.instance_lock.release()

    def close(self) -> None:
        """Release the database connection pool (no query runs; safe at exit on any thread)."""
        store, self.store = self.store, None
        if store is not None:
            store.close()
        self.release_instance_lock()
