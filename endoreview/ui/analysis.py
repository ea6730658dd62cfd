"""“Analyse”: run a model on videos as a background job (``python -m endoreview.jobs predict``) and show results
in the timeline and overlays as they arrive."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from endoreview import RESEARCH_NOTICE
from endoreview.services.jobs import JobService, Launch
from endoreview.services.model_resolver import NoModelError
from endoreview.services.records import JobState
from endoreview.ui.jobs_panel import Job, JobsPanel
from endoreview.ui.review_controller import ReviewController
from endoreview.ui.tasks import TaskRunner

log = logging.getLogger(__name__)


class AnalysisController(QObject):
    message = Signal(str)
    started = Signal(object)  # Job
    finished = Signal(object)  # JobEntry
    videoAnalysed = Signal(int)  # a video's analysis is stored (the job may still be running on others)
    noModel = Signal(str)

    def __init__(
        self,
        launcher: JobService,
        runner: TaskRunner,
        jobs: JobsPanel,
        review: ReviewController,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.launcher, self.runner, self.jobs, self.review = launcher, runner, jobs, review
        jobs.jobFinished.connect(self._on_finished)
        self._job_videos: dict[int, list[int]] = {}
        self._stored: set[int] = set()  # videos whose analysis a running job has stored
        self._failed: set[int] = set()

    def analyse(self, video_ids: list[int], model_dir: str | None = None) -> None:
        if not video_ids:
            self.message.emit("Select one or more videos in the library first.")
            return
        ids = list(video_ids)
        self.runner.submit(
            "predict job",
            self.launcher.predict,
            ids,
            model_dir,
            on_done=lambda launch: self._start(ids, launch),
            on_error=self._on_error,
        )

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, NoModelError):
            self.noModel.emit(str(exc))
        self.message.emit(f"Cannot analyse: {exc}")

    def _start(self, video_ids: list[int], launch: Launch) -> Job:
        job = self.jobs.start(
            launch.title, launch.argv, on_event=lambda ev: self._on_event(video_ids, ev), env=launch.env
        )
        self._job_videos[job.entry.id] = list(video_ids)
        self.message.emit(f"{launch.title}: running in the background. {RESEARCH_NOTICE}")
        self.started.emit(job)
        return job

    def _on_event(self, video_ids: list[int], ev: dict) -> None:
        kind, vid = ev.get("event"), ev.get("video_id")
        if kind == "video_done" and vid is not None:
            self._stored.add(int(vid))
            self.videoAnalysed.emit(int(vid))  # its library row updates now, not when the whole job ends
            done = len(self._stored & set(video_ids))
            self.message.emit(
                f"Analysis stored for {done} of {len(video_ids)} video(s); results are in the library."
            )
        elif kind == "error" and vid is not None:
            self._failed.add(int(vid))
        info = self.review.info
        if info is None or info.video_id not in video_ids:
            return
        if kind in ("progress", "video_done") and (vid is None or int(vid) == info.video_id):
            self.review.reload_soon()

    def _on_finished(self, entry) -> None:
        vids = self._job_videos.pop(entry.id, [])
        if self.review.info is not None and self.review.info.video_id in vids:
            self.review.reload_tracks()
        done, failed = len(self._stored & set(vids)), len(self._failed & set(vids))
        self._stored -= set(vids)
        self._failed -= set(vids)
        self.message.emit(_finished_text(str(entry.state), len(vids), done, failed))
        self.finished.emit(entry)


def _finished_text(state: str, n: int, done: int, failed: int) -> str:
    """The end of an analysis, announced: how it ended and how many videos it stored."""
    tail = f"{done} of {n} video(s) analysed" + (f", {failed} failed" if failed else "")
    if state == JobState.SUCCEEDED:
        return f"Analysis finished: {tail}."
    if state == JobState.CANCELLED:
        return f"Analysis cancelled: {tail} (kept)."
    return f"Analysis failed: {tail} — the Jobs panel shows the log."
