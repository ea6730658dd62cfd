"""The domain records as the UI sees them: the store's frozen dataclasses and string enums, named here so that
``endoreview.ui`` never imports ``endoreview.store`` (the import contract forbids it). Nothing is copied: these
are the very classes the store returns.
"""

from __future__ import annotations

from endoreview.store.records import (
    TASKS,
    ChangeSet,
    Job,
    JobState,
    Label,
    LabelKind,
    LabelOrigin,
    ModelVersion,
    NewLabel,
    PredictionRun,
    Project,
    ReviewState,
    ReviewStatus,
    RunState,
    Video,
)

__all__ = [
    "TASKS",
    "ChangeSet",
    "Job",
    "JobState",
    "Label",
    "LabelKind",
    "LabelOrigin",
    "ModelVersion",
    "NewLabel",
    "PredictionRun",
    "Project",
    "ReviewState",
    "ReviewStatus",
    "RunState",
    "Video",
]
