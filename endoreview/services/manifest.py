"""Snapshot reviewed labels into a training manifest (:mod:`core_model.data.manifest`, the app -> model contract).

What goes in, per video (only labels a reviewer has vouched for):

* ``video_label``: the newest ``accepted``/``edited``/``manual`` video-class label;
* ``segments``: ``accepted``/``edited``/``manual`` segments;
* ``frames``: ``accepted``/``edited``/``manual`` masks and boxes (any origin: drawn, keyframe, interpolated,
  propagated, imported, predicted-then-accepted), grouped by frame; a frame whose only reviewed labels are
  ``rejected`` model suggestions is a *negative* frame (``negative: true``);
* ``dense``: true when the video's review status is ``reviewed`` (the reviewer went through every frame, so a
  frame without labels is background);
* ``suggested`` (unreviewed) labels are never included.

Splits are per video, never per frame: ``split`` is a split name for all videos, a ``{video_id: split}`` mapping,
or ``"auto"`` (deterministic hash split via :func:`core_model.data.manifest.assign_splits`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from endoreview.services.library import LibraryService
from endoreview.store import Store
from endoreview.store.records import Label, LabelKind, ReviewState, ReviewStatus

POSITIVE = (ReviewState.ACCEPTED, ReviewState.EDITED, ReviewState.MANUAL)


def snapshot_manifest(
    store: Store,
    video_ids: Sequence[int],
    *,
    split: str | Mapping[int, str] = "train",
    library: LibraryService | None = None,
    out_path: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> Any:
    """Build (and, with ``out_path``, atomically save) a ``TrainingManifest`` of the given videos."""
    from core_model.data import manifest as mf

    library = library or LibraryService(store)
    classes: dict[str, list[str]] = {"video": [], "segment": [], "mask": [], "box": []}
    task_of = {"video_class": "video", "segment": "segment", "mask": "mask", "box": "box"}
    videos = []
    label_set_ids = set()
    for vid in video_ids:
        video = store.get_video(vid)
        label_set_ids.add(store.get_project(video.project_id).label_set_id)
        labels = store.labels_for_video(vid, suggestions=False)  # reviewed and rejected labels are rows
        for lab in labels:
            if lab.state in POSITIVE:
                lst = classes[task_of[lab.kind]]
                if lab.class_name not in lst:
                    lst.append(lab.class_name)
        videos.append(_video_entry(mf, video, labels, library))
    for ls_id in sorted(label_set_ids):
        for c in store.get_label_set(ls_id).classes:
            for task in c.tasks:
                lst = classes[task_of[task]]
                if c.name not in lst:
                    lst.append(c.name)
    if split == "auto":
        videos = list(mf.assign_splits(videos, val_fraction, test_fraction, seed))
    else:
        from dataclasses import replace

        videos = [replace(v, split=_split_for(split, int(v.id))) for v in videos]
    manifest = mf.TrainingManifest(
        videos=tuple(videos),
        classes={k: tuple(v) for k, v in classes.items() if v},
        source={
            "kind": "endoreview-snapshot",
            "database": store.url,
            "change_cursor": store.change_cursor(),
            "snapshot_by": store.reviewer,
            "video_ids": list(video_ids),
        },
    )
    manifest = mf.parse_manifest(mf.manifest_to_json(manifest))  # validate exactly as a trainer will
    if out_path is not None:
        mf.save_manifest(manifest, out_path)
    return manifest


def _split_for(split: str | Mapping[int, str], video_id: int) -> str:
    if isinstance(split, str):
        return split
    return split.get(video_id, "unassigned")


def _video_entry(mf: Any, video: Any, labels: Sequence[Label], library: LibraryService) -> Any:
    video_label = None
    vc = [x for x in labels if x.kind == LabelKind.VIDEO_CLASS and x.state in POSITIVE]
    if vc:
        video_label = max(vc, key=lambda x: (x.updated_at or x.created_at, x.id)).class_name
    segments = tuple(
        mf.Segment(int(x.start_frame), int(x.end_frame), x.class_name)
        for x in sorted(labels, key=lambda x: (x.start_frame or 0, x.id))
        if x.kind == LabelKind.SEGMENT and x.state in POSITIVE
    )
    masks: dict[int, list[Any]] = defaultdict(list)
    boxes: dict[int, list[Any]] = defaultdict(list)
    rejected_frames: set[int] = set()
    for x in labels:
        if x.frame is None:
            continue
        if x.state in POSITIVE:
            if x.kind == LabelKind.MASK and x.rle is not None:
                masks[x.frame].append(mf.MaskLabel(x.class_name, dict(x.rle), x.track_id))
            elif x.kind == LabelKind.BOX and x.bbox is not None:
                boxes[x.frame].append(mf.BoxLabel(x.class_name, tuple(x.bbox), x.track_id))
        elif x.state == ReviewState.REJECTED:
            rejected_frames.add(x.frame)
    frames = []
    for f in sorted(set(masks) | set(boxes) | rejected_frames):
        if f in masks or f in boxes:
            frames.append(mf.FrameLabels(f, tuple(masks.get(f, ())), tuple(boxes.get(f, ())), False))
        else:
            frames.append(mf.FrameLabels(f, (), (), True))
    path: Path = library.resolve_path(video)
    return mf.ManifestVideo(
        id=str(video.id),
        path=str(path),
        split="unassigned",
        num_frames=video.frame_count,
        fps=video.fps,
        width=video.width,
        height=video.height,
        video_label=video_label,
        segments=segments,
        frames=tuple(frames),
        site=video.meta.get("site") if isinstance(video.meta.get("site"), str) else None,
        dense=video.review_status == ReviewStatus.REVIEWED,
    )


class ManifestService:
    """``ManifestService(store, library).snapshot_manifest(video_ids, split=...)``: see :func:`snapshot_manifest`."""

    def __init__(self, store: Store, library: LibraryService | None = None):
        self.store = store
        self.library = library or LibraryService(store)

    def snapshot_manifest(
        self,
        video_ids: Sequence[int],
        split: str | Mapping[int, str] = "train",
        out_path: str | os.PathLike | None = None,
        **kw: Any,
    ) -> Any:
        return snapshot_manifest(
            self.store, video_ids, split=split, library=self.library, out_path=out_path, **kw
        )
