"""Projects and label sets: what a clinician works in, and which classes they can label."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from endoreview.store import Store
from endoreview.store.records import LabelSet, Project

log = logging.getLogger(__name__)

DEFAULT_LABEL_SET = "Polyps (default)"
DEFAULT_PROJECT = "Default project"

# The default label set: video classes normal/abnormal, a polyp segment class, polyp masks and boxes.
DEFAULT_CLASSES: tuple[dict[str, Any], ...] = (
    {"name": "normal", "color": "#2e9d5b", "shortcut": "N", "tasks": ["video_class"]},
    {"name": "abnormal", "color": "#d9480f", "shortcut": "A", "tasks": ["video_class"]},
    {"name": "polyp", "color": "#e03131", "shortcut": "P", "tasks": ["segment", "mask", "box"]},
)


class ProjectService:
    """``default_label_set``: the name of the label set new projects get (Settings → "Default label set"); empty
    or not found: the built-in one (a name that is not found is logged)."""

    def __init__(self, store: Store, default_label_set: str | None = None):
        self.store = store
        self.default_label_set_name = (default_label_set or "").strip()

    def default_label_set(self) -> LabelSet:
        """The built-in label set (created on first use)."""
        existing = self.store.find_label_set(DEFAULT_LABEL_SET)
        return existing or self.store.create_label_set(DEFAULT_LABEL_SET, DEFAULT_CLASSES)

    def new_project_label_set(self) -> LabelSet:
        """The label set a new project gets: the configured default when it exists, else the built-in one."""
        name = self.default_label_set_name
        if name:
            found = self.store.find_label_set(name)
            if found is not None:
                return found
            log.warning("default label set %r (Settings) does not exist; using %r", name, DEFAULT_LABEL_SET)
        return self.default_label_set()

    def create_label_set(self, name: str, classes: Sequence[dict[str, Any]]) -> LabelSet:
        """``classes``: ``{"name", "color": "#rrggbb", "shortcut", "tasks": [video_class|segment|mask|box]}``."""
        return self.store.create_label_set(name, classes)

    def create_project(self, name: str, label_set_id: int | None = None, description: str = "") -> Project:
        """A new project; its label set defaults to the configured default label set, else the built-in one."""
        if label_set_id is None:
            label_set_id = self.new_project_label_set().id
        return self.store.create_project(name, label_set_id, description)

    def default_project(self) -> Project:
        """The project videos go to when the user has not made one (created on first use)."""
        return self.store.find_project(DEFAULT_PROJECT) or self.create_project(DEFAULT_PROJECT)

    def list_projects(self) -> list[Project]:
        return self.store.list_projects()

    def label_set_of(self, project_id: int) -> LabelSet:
        return self.store.get_label_set(self.store.get_project(project_id).label_set_id)
