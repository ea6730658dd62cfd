"""What the review screens read: a video, its latest prediction run, the run's per-frame output and the labels.

The UI builds its lanes and overlays from these records (``endoreview.ui.tracks``) and never queries the store
itself. Reads only; every change goes through :class:`~endoreview.services.editing.EditingService` (in the editor:
through :class:`~endoreview.services.review_session.ReviewSession`).
"""

from __future__ import annotations

from collections.abc import Sequence

from endoreview.store import Store
from endoreview.store.errors import NotFoundError
from endoreview.store.frame_outputs import RunSummary
from endoreview.store.records import Label, ModelVersion, PredictionRun, ReviewState, Video


class ReviewData:
    def __init__(self, store: Store) -> None:
        self.store = store

    def video(self, video_id: int) -> Video:
        return self.store.get_video(video_id)

    def latest_run(self, video_id: int) -> PredictionRun | None:
        runs = self.store.list_prediction_runs(video_id)
        return runs[-1] if runs else None

    def latest_runs(self, project_id: int) -> dict[int, PredictionRun]:
        """video id -> its newest prediction run, for the project's videos that have one."""
        return self.store.latest_prediction_runs(project_id)

    def frame_probs(self, run_id: int) -> dict[int, dict[str, float]]:
        return self.store.frame_probs(run_id)

    def run_summary(self, run_id: int) -> RunSummary:
        """The run's per-frame class probabilities and best detection score (what the lanes draw; no masks)."""
        return self.store.run_summary(run_id)

    def run_geometry(self, video_id: int, run_id: int, frames: tuple[int, int] | None = None) -> list[Label]:
        """The run's masks and boxes on frames ``[a, b)`` (all frames: None), without those a reviewer rejected
        (they are not there)."""
        return [
            lab
            for lab in self.store.labels_for_video(
                video_id, kinds=("mask", "box"), run_id=run_id, frames=frames
            )
            if lab.frame is not None and lab.state != ReviewState.REJECTED
        ]

    def labels(self, video_id: int, kinds: Sequence[str], suggestions: bool = True) -> list[Label]:
        """Labels of some kinds; ``suggestions=False`` leaves out the model's open mask and box suggestions."""
        return self.store.labels_for_video(video_id, kinds=tuple(kinds), suggestions=suggestions)

    def model_name(self, version_id: int) -> str:
        try:
            return self.store.get_model_version(version_id).name
        except NotFoundError:  # a deleted model version still leaves its output readable
            return f"model {version_id}"

    def active_model(self) -> ModelVersion | None:
        return self.store.active_model_version()
