"""Recording model output: a prediction run per (video, model version), streamed into the store in batches.

:class:`PredictionRecorder` consumes the events of :meth:`core_model.inference.Predictor.predict_video` (or of
``endofm predict`` JSON lines) as they stream and writes every ``batch_frames`` frames (the store commits them in
short transactions of :data:`~endoreview.store.annotations.PREDICTION_TX_FRAMES` frames, giving way to the reviewer's
saves between them), so a crash or cancel loses at most one batch and the reviewer can start on the first frames
while the rest runs.

On ``video_done`` the run is closed with run-level suggestions:

* segments: maximal runs of frames whose probability for a class (other than ``normal``) is >= ``threshold``,
  at least ``min_segment`` frames long, suggested under the class ``segment_classes`` maps it to (by default
  ``abnormal`` -> ``polyp``, matching the default label set; other classes keep their name);
* the video class: the model's whole-video decision (``video_done["decision"]``: its operating point applied to
  the per-frame scores, ``core_model.contract.video_decision``), with the decision's explanation as the label's
  ``reason``; for a stream without a decision, the class with the highest video-level probability.

The decision, its operating point and the out-of-domain verdict (``video_done["ood"]``) are kept in the run's
``params["summary"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endoreview.store import Store
from endoreview.store.records import (
    FramePrediction,
    LabelKind,
    LabelOrigin,
    NewLabel,
    PredictionRun,
    RunState,
)

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_CLASSES = {"abnormal": "polyp"}
NEGATIVE_CLASSES = {"normal", "background", "negative"}


@dataclass(frozen=True)
class RecordResult:
    run: PredictionRun
    frames: int
    labels: int
    state: str  # finished | failed | cancelled
    message: str = ""


def segments_from_probs(
    probs: Mapping[int, Mapping[str, float]], n_frames: int, threshold: float = 0.5, min_segment: int = 1
) -> list[tuple[str, int, int]]:
    """``[(class, start, end)]`` runs (end exclusive) where a non-normal class's probability >= threshold."""
    classes = sorted({c for p in probs.values() for c in p} - NEGATIVE_CLASSES)
    out = []
    for c in classes:
        start = None
        for f in range(n_frames + 1):
            on = f < n_frames and probs.get(f, {}).get(c, 0.0) >= threshold
            if on and start is None:
                start = f
            elif not on and start is not None:
                if f - start >= min_segment:
                    out.append((c, start, f))
                start = None
    return out


class _FrameProbs(Mapping[int, dict[str, float]]):
    """frame -> {class: probability}, held as one float32 array per class (NaN: no value) instead of a dict per
    frame: 4 bytes a frame and class, so a recorder's memory does not grow with a procedure's length."""

    def __init__(self, n_frames: int):
        self.n = max(0, int(n_frames))
        self.cols: dict[str, np.ndarray] = {}
        self.seen = np.zeros(self.n, dtype=bool)

    def set(self, f: int, probs: Mapping[str, float]) -> None:
        if not 0 <= f < self.n:
            return
        for c, p in probs.items():
            col = self.cols.get(c)
            if col is None:
                col = self.cols[c] = np.full(self.n, np.nan, dtype=np.float32)
            col[f] = p
        self.seen[f] = True

    def __getitem__(self, f: int) -> dict[str, float]:
        if not (0 <= f < self.n and self.seen[f]):
            raise KeyError(f)
        return {c: float(col[f]) for c, col in self.cols.items() if col[f] == col[f]}

    def __iter__(self):
        return iter(np.flatnonzero(self.seen).tolist())

    def __len__(self) -> int:
        return int(self.seen.sum())


class PredictionRecorder:
    """Writes one video's model output into a new prediction run. Use :meth:`record` or feed :meth:`handle`."""

    def __init__(
        self,
        store: Store,
        video_id: int,
        model_version_id: int | None,
        *,
        params: dict[str, Any] | None = None,
        batch_frames: int = 256,
        threshold: float = 0.5,
        min_segment: int = 3,
        min_score: float = 0.0,
        segment_classes: Mapping[str, str] | None = None,
    ):
        self.store = store
        self.video_id = video_id
        self.model_version_id = model_version_id
        self.batch_frames = batch_frames
        self.threshold = threshold
        self.min_segment = min_segment
        self.min_score = min_score
        self.segment_classes = dict(DEFAULT_SEGMENT_CLASSES if segment_classes is None else segment_classes)
        self.run = store.start_prediction_run(video_id, model_version_id, params or {})
        self._pending: list[FramePrediction] = []
        self.frames = 0
        self.labels = 0
        self.n_frames = store.get_video(video_id).frame_count
        self._probs = _FrameProbs(self.n_frames)
        self.closed: RecordResult | None = None
        log.info("prediction run %d started for video %d", self.run.id, video_id)

    def flush(self) -> None:
        if self._pending:
            self.labels += self.store.add_frame_predictions(
                self.run.id, self._pending, min_score=self.min_score
            )
            self.frames += len(self._pending)
            self._pending = []

    def handle(self, event: Mapping[str, Any]) -> RecordResult | None:
        """Consume one Predictor event; returns the result once the video is done, failed or cancelled."""
        kind = event.get("event")
        if kind == "frame":
            f = int(event["frame"])
            probs = {str(k): float(v) for k, v in (event.get("probs") or {}).items()}
            self._probs.set(f, probs)
            self._pending.append(
                FramePrediction(
                    frame=f,
                    probs=probs,
                    masks=tuple(event.get("masks") or ()),
                    boxes=tuple(event.get("boxes") or ()),
                )
            )
            if len(self._pending) >= self.batch_frames:
                self.flush()
        elif kind == "video_done":
            summary = {k: event[k] for k in ("decision", "operating_point", "ood") if event.get(k)}
            return self.finish(RunState.FINISHED, video_probs=event.get("probs") or {}, summary=summary)
        elif kind == "cancelled":
            return self.finish(RunState.CANCELLED, message="cancelled")
        elif kind == "error":
            return self.finish(RunState.FAILED, message=str(event.get("message", "")))
        return None

    def finish(
        self,
        state: str,
        video_probs: Mapping[str, float] | None = None,
        message: str = "",
        summary: Mapping[str, Any] | None = None,
    ) -> RecordResult:
        if self.closed is not None:
            return self.closed
        self.flush()
        suggestions: list[NewLabel] = []
        if state == RunState.FINISHED:
            for cls, a, b in segments_from_probs(
                self._probs, self.n_frames, self.threshold, self.min_segment
            ):
                name = self.segment_classes.get(cls, cls)
                score = max(self._probs[f].get(cls, 0.0) for f in range(a, b))
                suggestions.append(self._suggest(LabelKind.SEGMENT, name, score, start_frame=a, end_frame=b))
            decision = (summary or {}).get("decision")
            if decision:
                suggestions.append(
                    self._suggest(
                        LabelKind.VIDEO_CLASS,
                        str(decision["label"]),
                        float(decision["score"])
                        if decision.get("positive")
                        else 1.0 - float(decision["score"]),
                        reason=str(decision.get("text") or "")[:500] or None,
                    )
                )
            elif video_probs:
                cls, p = max(video_probs.items(), key=lambda kv: kv[1])
                suggestions.append(self._suggest(LabelKind.VIDEO_CLASS, str(cls), float(p)))
        run = self.store.finish_prediction_run(
            self.run.id, state, suggestions, dict(summary) if summary and state == RunState.FINISHED else None
        )
        self.closed = RecordResult(run, self.frames, self.labels + len(suggestions), state, message)
        log.info("prediction run %d for video %d %s (%d frames)", run.id, self.video_id, state, self.frames)
        return self.closed

    def _suggest(self, kind: LabelKind, name: str, score: float, **kw: Any) -> NewLabel:
        return NewLabel(
            video_id=self.video_id,
            kind=kind,
            class_name=name,
            origin=LabelOrigin.PREDICTED,
            score=score,
            model_version_id=self.model_version_id,
            run_id=self.run.id,
            **kw,
        )

    def record(
        self, events: Iterable[Mapping[str, Any]], on_event: Callable[[Mapping[str, Any]], None] | None = None
    ) -> RecordResult:
        """Consume a whole event stream (stops at video_done/cancelled/error; a stream that just ends is failed)."""
        try:
            for ev in events:
                if on_event is not None:
                    on_event(ev)
                done = self.handle(ev)
                if done is not None:
                    return done
        except BaseException:
            try:
                self.finish(RunState.FAILED, message="interrupted")
            except Exception:  # the original error is the one to report
                log.exception("could not close prediction run %d", self.run.id)
            raise
        return self.finish(RunState.FAILED, message="the prediction stream ended before the video was done")


@dataclass(frozen=True)
class ImportedRun:
    file: str
    video_id: int | None
    run_id: int | None
    state: str  # "finished", "skipped" (already imported) or "failed"
    frames: int = 0
    message: str = ""


def import_prediction_outputs(
    store: Store,
    project_id: int,
    paths: Iterable[str | Path],
    *,
    model_version_id: int | None = None,
    library_root: str | Path | None = None,
) -> list[ImportedRun]:
    """Import ``endofm predict`` outputs (archive mode's per-video ``.jsonl`` files, or folders of them) into the
    library: each file's video is imported into ``project_id`` (or found there by content), and its events are
    recorded as a new prediction run, as the predict job would have. A file already imported (same file name and
    size recorded in a run's parameters) is skipped, so importing the archive folder again adds only new outputs.
    A file that is not a complete prediction stream is reported as failed and leaves nothing behind."""
    import json

    from endoreview.services.library import LibraryService, VideoImportError

    library = LibraryService(store, library_root)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.jsonl") if not f.name.startswith("rank-"))
        else:
            files.append(p)
    out: list[ImportedRun] = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                first = json.loads(fh.readline() or "{}")
            if first.get("event") != "video_start" or not first.get("video"):
                raise ValueError("the first line is not a video_start event")
            video, _ = library.import_video(project_id, first["video"])
        except (OSError, ValueError, VideoImportError) as e:
            out.append(ImportedRun(str(f), None, None, "failed", message=f"{f}: {e}"))
            continue
        stamp = {"imported_from": f.name, "bytes": f.stat().st_size}
        if any(
            r.state == RunState.FINISHED and all(r.params.get(k) == v for k, v in stamp.items())
            for r in store.list_prediction_runs(video.id)
        ):
            out.append(ImportedRun(str(f), video.id, None, "skipped"))
            continue
        rec = PredictionRecorder(store, video.id, model_version_id, params=stamp)
        res: RecordResult | None = None
        try:
            with open(f, encoding="utf-8") as fh:
                res = rec.record(json.loads(line) for line in fh if line.strip())
        except (OSError, ValueError) as e:
            res = rec.finish(RunState.FAILED, message=f"{f}: {e}")
        if res.state != RunState.FINISHED:
            store.delete_prediction_run(rec.run.id)
            out.append(ImportedRun(str(f), video.id, None, "failed", message=res.message))
            continue
        out.append(ImportedRun(str(f), video.id, res.run.id, "finished", res.frames))
    return out
