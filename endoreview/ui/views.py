"""The library's and player's view models: what the library table and the player show, built on a worker thread
from the services (:class:`~endoreview.services.app.AppServices`, reached through the app's
:class:`~endoreview.ui.backend.Backend` bundle). Every method blocks (database, file system) and therefore refuses
to run on the GUI thread (:func:`endoreview.media.guard.check_off_gui_thread`); call them through
:class:`TaskRunner`. Results are plain view models (:class:`LibraryRow`, :class:`VideoInfo`, tracks) ready for
widgets. Both are built once by the composition root (:func:`endoreview.ui.app.compose`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from endoreview.media.guard import check_off_gui_thread
from endoreview.media.proxy import ProxyInfo, find_proxy
from endoreview.services.records import LabelKind, LabelOrigin, ReviewState
from endoreview.ui.library import LibraryRow, VideoFacts
from endoreview.ui.tracks import LabelTrack, PredictionTrack


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


def video_facts(library: Any, v: Any) -> dict[str, Any]:
    """:class:`VideoFacts` of the video record ``v`` (its file looked up where ``library`` keeps it)."""
    try:
        path = library.resolve_path(v)
        exists = path.exists()
    except Exception:  # an unresolvable path is a missing file
        path, exists = Path(v.path), False
    name = str(v.meta.get("name") or Path(v.path).name)
    return dict(video_id=v.id, name=name, path=str(path), exists=exists, frame_count=v.frame_count,
                fps=v.fps, width=v.width, height=v.height)  # fmt: skip


class PlayerViews:
    """What the player shows of a video: its facts and proxy (:meth:`video_info`) and its timeline lanes
    (:meth:`tracks`), read through ``backend`` (the app's services, guarded)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    library = property(lambda self: self.backend.library)
    review = property(lambda self: self.backend.review)

    def video_info(self, video_id: int) -> VideoInfo:
        check_off_gui_thread("db", "video info")
        facts = video_facts(self.library, self.review.video(video_id))
        path = Path(facts["path"])
        proxy = find_proxy(path) if facts["exists"] and path.is_file() else None
        if proxy is not None and proxy.frame_count != facts["frame_count"]:
            proxy = None
        return VideoInfo(**facts, proxy=proxy)

    def prediction_track(
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
        run = self.review.latest_run(video_id)
        labels = self.review.labels(
            video_id, kinds=("segment", "video_class", "mask", "box"), suggestions=False
        )
        rejected = [
            x for x in labels if run is not None and x.run_id == run.id and x.state == ReviewState.REJECTED
        ]
        pred = self.prediction_track(video_id, v.frame_count, run, rejected)
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


class LibraryViews:
    """The library table's rows (:meth:`rows`), importing files (:meth:`import_paths`) and re-linking moved ones
    (:meth:`relink`) in the open project, through ``backend`` (the app's services, guarded); ``player`` gives each
    row's prediction lanes."""

    def __init__(self, backend: Any, player: PlayerViews) -> None:
        self.backend, self.player = backend, player

    library = property(lambda self: self.backend.library)
    review = property(lambda self: self.backend.review)
    project = property(lambda self: self.backend.project)

    def rows(self) -> list[LibraryRow]:
        check_off_gui_thread("db", "library rows")
        out = []
        runs = self.review.latest_runs(self.project.id)
        for v in self.library.list_videos(self.project.id):
            run = runs.get(v.id)
            track = self.player.prediction_track(v.id, v.frame_count, run)
            finding, unc = _finding(track)
            ood = _ood_warning(run)
            if ood:
                finding = f"⚠ {ood} — {finding}"
            out.append(
                LibraryRow(
                    **video_facts(self.library, v),
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
