"""The UI's single door to the services. Every method blocks (database, file system) and therefore refuses to run on
the GUI thread (:func:`endoreview.media.guard.check_off_gui_thread`); call them through :class:`TaskRunner`.

Results are plain view models (:class:`LibraryRow`, :class:`VideoInfo`, tracks) ready for widgets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from endoreview.media.guard import check_off_gui_thread
from endoreview.media.proxy import ProxyInfo, find_proxy
from endoreview.services.app import AppServices
from endoreview.services.jobs import JobService, Launch
from endoreview.services.model_resolver import model_params, resolve_model
from endoreview.services.records import LabelKind, LabelOrigin, ReviewState
from endoreview.ui.library import LibraryRow, VideoFacts
from endoreview.ui.tasks import GuardedService
from endoreview.ui.tracks import LabelTrack, PredictionTrack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo(VideoFacts):
    proxy: ProxyInfo | None = None


@dataclass(frozen=True)
class ImportSummary:
    imported: int
    already_present: int
    failed: tuple[tuple[str, str], ...]
    cancelled: bool = False
    video_ids: tuple[int, ...] = ()


@dataclass
class VideoTracks:
    predictions: PredictionTrack | None
    labels: LabelTrack
    video_label: str | None = None
    run_state: str | None = None
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _ood_warning(run) -> str:
    """ "unlike the model's training data" when the run's out-of-domain check flagged the video (predictions stay
    visible: the warning says how much to trust them)."""
    ood = ((run.params or {}).get("summary") or {}).get("ood") if run is not None else None
    return "unlike the model's training data" if ood and ood.get("out_of_domain") else ""


def _finding_detail(run) -> str:
    """The library's tooltip on what the model found: the whole-video call in words and, for a video unlike the
    model's training data, the out-of-domain verdict (its predictions stay listed)."""
    summary = ((run.params or {}).get("summary") or {}) if run is not None else {}
    lines = []
    decision = summary.get("decision") or {}
    if decision.get("text"):
        lines.append(f"Whole video: {decision['text']}")
    ood = summary.get("ood") or {}
    if ood.get("out_of_domain"):
        lines.append(
            f"⚠ {ood.get('message', 'unlike the model training data')}. The predictions are still shown."
        )
    return "\n".join(lines)


def _finding(track: PredictionTrack | None) -> tuple[str, float | None]:
    if track is None or track.empty:
        return "", None
    parts = []
    for cls in track.classes:
        if cls.lower() in ("normal", "background", "negative"):
            continue
        frac = track.positive_fraction(cls)
        if frac is not None:
            parts.append(f"{cls} in {frac:.0%} of frames")
    u = track.uncertainty()
    unc = float(u[~(u != u)].mean()) if (u == u).any() else None  # nan-safe mean
    return "; ".join(parts), unc


class Backend:
    """The library's and player's view models over ``services`` (the app's :class:`AppServices`, built once by the
    composition root :func:`endoreview.ui.app.compose`); after :meth:`open` its ``store``, ``library``,
    ``projects``, ``labels`` and ``review`` are those services, each call refused on the GUI thread."""

    def __init__(self, services: AppServices) -> None:
        self.services = services
        self.store: Any = None
        self.library: Any = None
        self.projects: Any = None
        self.labels: Any = None
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

    # ---- library ------------------------------------------------------------------------------------------
    def rows(self) -> list[LibraryRow]:
        check_off_gui_thread("db", "library rows")
        out = []
        runs = self.review.latest_runs(self.project.id)
        for v in self.library.list_videos(self.project.id):
            run = runs.get(v.id)
            track = self._prediction_track(v.id, v.frame_count, run)
            finding, unc = _finding(track)
            ood = _ood_warning(run)
            if ood:
                finding = f"⚠ {ood} — {finding}"
            out.append(
                LibraryRow(
                    **self._facts(v),
                    review_status=str(v.review_status),
                    reviewer=v.assigned_reviewer or v.updated_by or "",
                    finding=finding,
                    finding_detail=_finding_detail(run),
                    uncertainty=unc,
                )
            )
        return out

    def import_paths(
        self,
        paths: list[str],
        progress: Callable[[int, int, str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ImportSummary:
        check_off_gui_thread("db", "import")
        files = self.library._expand(paths)  # the same expansion import_paths uses
        imported = present = 0
        failed: list[tuple[str, str]] = []
        ids: list[int] = []
        for k, p in enumerate(files):
            if cancelled is not None and cancelled():
                return ImportSummary(imported, present, tuple(failed), True, tuple(ids))
            if progress is not None:
                progress(k, len(files), Path(p).name)
            try:
                video, created = self.library.import_video(self.project.id, p)
            except Exception as exc:  # reported per file, the import goes on
                failed.append((str(p), str(exc)))
                continue
            ids.append(video.id)
            imported += int(created)
            present += int(not created)
        if progress is not None:
            progress(len(files), len(files), "")
        return ImportSummary(imported, present, tuple(failed), False, tuple(ids))

    def relink(self, folders: list[str]) -> int:
        """Find moved files of missing videos under ``folders`` by content; returns how many were re-linked."""
        check_off_gui_thread("db", "relink")
        return len(self.library.relink(folders, self.project.id))

    def _facts(self, v: Any) -> dict[str, Any]:
        """:class:`VideoFacts` of the video record ``v`` (its file looked up where the library keeps it)."""
        try:
            path = self.library.resolve_path(v)
            exists = path.exists()
        except Exception:  # an unresolvable path is a missing file
            path, exists = Path(v.path), False
        name = str(v.meta.get("name") or Path(v.path).name)
        return dict(video_id=v.id, name=name, path=str(path), exists=exists, frame_count=v.frame_count,
                    fps=v.fps, width=v.width, height=v.height)  # fmt: skip

    def video_info(self, video_id: int) -> VideoInfo:
        check_off_gui_thread("db", "video info")
        facts = self._facts(self.review.video(video_id))
        path = Path(facts["path"])
        proxy = find_proxy(path) if facts["exists"] and path.is_file() else None
        if proxy is not None and proxy.frame_count != facts["frame_count"]:
            proxy = None
        return VideoInfo(**facts, proxy=proxy)

    # ---- predictions and labels ---------------------------------------------------------------------------
    def _latest_run(self, video_id: int) -> Any | None:
        return self.review.latest_run(video_id)

    def _prediction_track(
        self, video_id: int, frame_count: int, run: Any | None, rejected: list[Any] | None = None
    ) -> PredictionTrack | None:
        """The run's lanes from its stored per-frame summary (one row; no mask or box is read: the review session
        reads those around the frame on screen). ``rejected``: the run's rejected predictions, whose frames get
        their detection score again from what is left (a rejected prediction leaves the Detection lane)."""
        if run is None:
            return None
        summary = self.review.run_summary(run.id)
        track = PredictionTrack(frame_count)
        n = min(frame_count, summary.probs.shape[0])
        track.classes = list(summary.classes)
        track.probs = np.full((frame_count, len(track.classes)), np.nan, np.float32)
        track.probs[:n] = summary.probs[:n]
        track.det_score[:n] = summary.best[:n]
        frames = sorted({int(x.frame) for x in rejected or () if x.frame is not None and 0 <= x.frame < n})
        for f in frames:
            left = self.review.run_geometry(video_id, run.id, frames=(f, f + 1))
            track.det_score[f] = max((x.score if x.score is not None else 1.0 for x in left), default=0.0)
        return track

    def tracks(self, video_id: int) -> VideoTracks:
        check_off_gui_thread("db", "tracks")
        v = self.review.video(video_id)
        run = self._latest_run(video_id)
        labels = self.review.labels(
            video_id, kinds=("segment", "video_class", "mask", "box"), suggestions=False
        )
        rejected = [
            x for x in labels if run is not None and x.run_id == run.id and x.state == ReviewState.REJECTED
        ]
        pred = self._prediction_track(video_id, v.frame_count, run, rejected)
        human = [
            lab for lab in labels if lab.origin != LabelOrigin.PREDICTED or lab.state != ReviewState.SUGGESTED
        ]
        suggested_segments = [
            lab
            for lab in labels
            if lab.kind in (LabelKind.SEGMENT, LabelKind.VIDEO_CLASS) and lab.state == ReviewState.SUGGESTED
        ]
        track = LabelTrack.from_labels(v.frame_count, human + suggested_segments)
        video_label = None
        for lab in labels:
            if lab.kind == LabelKind.VIDEO_CLASS:
                if lab.reason and lab.state == ReviewState.SUGGESTED and lab.origin == LabelOrigin.PREDICTED:
                    # the model's call explained: "abnormal: polyp suggested at 01:12–01:19, 0.90"
                    video_label = f"{lab.reason} ({lab.state})"
                    continue
                score = (
                    f" {lab.score:.0%}"
                    if lab.score is not None and lab.state == ReviewState.SUGGESTED
                    else ""
                )
                video_label = f"{lab.class_name}{score} ({lab.state})"
        ood = _ood_warning(run)
        if ood:
            video_label = f"{video_label} · {ood}" if video_label else ood
        model_name = ""
        if run is not None and run.model_version_id is not None:
            model_name = self.review.model_name(run.model_version_id)
        return VideoTracks(pred, track, video_label, run.state if run else None, model_name)

    # ---- models -------------------------------------------------------------------------------------------
    def active_model_dir(self) -> tuple[str, str] | None:
        """(name, directory) of the active model version, if one is registered and its files exist."""
        check_off_gui_thread("db", "active model")
        mv = self.review.active_model()
        if mv is None or not Path(mv.files_dir).is_dir():
            return None
        return mv.name, mv.files_dir

    def predict_job(self, video_ids: list[int], model_dir: str | None = None) -> Launch:
        """Create a predict job row for ``video_ids`` and return how to start it (argv + environment)."""
        check_off_gui_thread("db", "create predict job")
        from endoreview.services.app_settings import load_settings

        model = resolve_model(self.services.store, model=model_dir, demo=True, usable_only=True)
        params: dict[str, Any] = {"video_ids": [int(v) for v in video_ids], **model_params(model)}
        try:
            device = load_settings().device
        except Exception:  # unreadable settings: the job picks its device itself
            device = "auto"
        if device != "auto":
            params["device"] = device
        job = self.jobs.create("predict", **params)
        n = len(video_ids)
        return self.jobs.launch(job, f"Analyse {n} video{'s' if n != 1 else ''} with {model.name}")
