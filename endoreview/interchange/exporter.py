"""Export labels and prediction runs from the store to the formats other tools read.

Formats (``ExportOptions.format``): ``coco`` (RLE masks), ``coco-polygons``, ``yolo-det``, ``yolo-seg``, ``voc``,
``png-masks``, ``cvat-video``, ``csv`` (segments + video labels), ``manifest`` (the training manifest),
``endofm-pretrain`` (Endo-FM's ``train.csv`` list of videos).

Selection: ``selection="reviewed"`` (accepted, edited, manual: the default, except for prediction runs),
``"all"`` (every label, suggestions included; COCO and CSV say each label's review state and score) or
``states=[...]``; ``video_ids`` (a video set; default: the whole project) and/or ``video_status`` (e.g. only
videos whose review is finished); ``run_ids`` (labels of those prediction
runs only). Rejected labels are negatives: only the manifest can express them; other formats drop them and say so.

Privacy: ``pseudonymize`` replaces video names with ``v<12 hex>`` (a hash of the video content id, stable across
exports, not reversible without the database); ``strip_metadata`` leaves out database URL, reviewer names, times and
source paths; ``blank_text`` fills each video's burned-in text rectangle (set once per video source with
:func:`set_text_region`, stored in the video metadata as ``burned_in_text_rect``) with black in every exported frame
and re-encoded video. Frame images are written fresh (no EXIF or other metadata).

Every export returns (and writes as ``export_report.json``) the list of what the format could not carry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core_model.video import VideoError
from endoreview.interchange.formats import coco, cvat, maskdir, tables, voc, yolo
from endoreview.interchange.model import (
    BoxAnn,
    Collection,
    MaskAnn,
    Provenance,
    SegmentAnn,
    VideoItem,
    VideoLabelAnn,
)
from endoreview.services.library import LibraryService
from endoreview.store import Store
from endoreview.store import frame_outputs as fo
from endoreview.store.records import Label, LabelKind, ReviewState, Video

log = logging.getLogger(__name__)

FORMATS = (
    "coco",
    "coco-polygons",
    "yolo-det",
    "yolo-seg",
    "voc",
    "png-masks",
    "cvat-video",
    "csv",
    "manifest",
    "endofm-pretrain",
)
REVIEWED = (ReviewState.ACCEPTED, ReviewState.EDITED, ReviewState.MANUAL)
TEXT_REGION_KEY = "burned_in_text_rect"

ALWAYS_DROPPED = "origin, reviewer, times and provenance of each label"
STATE_FORMATS = ("coco", "coco-polygons", "csv")  # formats that carry each label's review state and score
STATE_DROPPED = (
    "review state of each label (this format cannot say which labels are unreviewed model suggestions)"
)


class ExportError(ValueError):
    pass


@dataclass
class ExportOptions:
    format: str
    # reviewed (ground truth only) | all (suggestions too, each with its state); None: reviewed, or all when
    # exporting prediction runs (``run_ids``), whose labels are suggestions by nature
    selection: str | None = None
    states: Sequence[str] | None = None
    video_ids: Sequence[int] | None = None
    run_ids: Sequence[int] | None = None
    project_id: int | None = None
    video_status: str | None = None  # only videos in this review status (unreviewed | in_review | reviewed)
    frames: bool = False  # write the labelled frames as images
    all_frames: bool = False  # ... every frame, not only labelled ones
    image_format: str = "jpg"  # jpg | png
    pseudonymize: bool = False
    strip_metadata: bool = False
    blank_text: bool = False


@dataclass
class ExportReport:
    out_dir: Path
    format: str
    files: list[Path] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    videos: int = 0
    labels: int = 0
    frames_written: int = 0
    names: dict[int, str] = field(default_factory=dict)  # video id -> exported name (not written to disk)
    cancelled: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video name, reason): frames not written


def set_text_region(store: Store, video_ids: Sequence[int], rect: Sequence[int] | None) -> None:
    """Set (or clear) the burned-in text rectangle ``[x0, y0, x1, y1]`` of videos from one source."""
    for vid in video_ids:
        v = store.get_video(vid)
        meta = dict(v.meta or {})
        if rect is None:
            meta.pop(TEXT_REGION_KEY, None)
        else:
            x0, y0, x1, y1 = (int(c) for c in rect)
            if not (0 <= x0 < x1 <= v.width and 0 <= y0 < y1 <= v.height):
                raise ExportError(
                    f"text rectangle {list(rect)} is not inside video {vid}'s {v.width}x{v.height} frame"
                )
            meta[TEXT_REGION_KEY] = [x0, y0, x1, y1]
        store.update_video(vid, v.version, meta=meta)


def pseudonym(video: Video) -> str:
    return "v" + hashlib.sha256(f"endoreview-export:{video.content_hash}".encode()).hexdigest()[:12]


class Exporter:
    def __init__(self, store: Store, library: LibraryService | None = None):
        self.store = store
        self.library = library or LibraryService(store)

    # ------------------------------------------------------------------ selection
    def _videos(self, opt: ExportOptions) -> list[Video]:
        if opt.video_ids is not None:
            videos = [self.store.get_video(v) for v in opt.video_ids]
        else:
            videos = self.store.list_videos(opt.project_id)
        if opt.video_status is not None:
            videos = [v for v in videos if str(v.review_status) == str(opt.video_status)]
        return videos

    def _labels(self, video: Video, opt: ExportOptions) -> list[Label]:
        states = self._states(opt)
        labels = self.store.labels_for_video(video.id, states=states)
        if opt.run_ids is not None:
            runs = set(opt.run_ids)
            labels = [lab for lab in labels if lab.run_id in runs]
        return labels

    def _names(self, videos: list[Video], opt: ExportOptions) -> dict[int, str]:
        names: dict[int, str] = {}
        used: set[str] = set()
        for v in videos:
            if opt.pseudonymize:
                base = pseudonym(v)
            else:
                meta = v.meta or {}
                base = str(
                    (meta.get("import") or {}).get("name") or Path(str(meta.get("name") or v.path)).stem
                )
                base = (
                    "".join(c if c.isalnum() or c in "-_." else "_" for c in base.replace("/", "__"))
                    or f"video_{v.id}"
                )
            name = base if base not in used else f"{base}_{v.id}"
            used.add(name)
            names[v.id] = name
        return names

    # ------------------------------------------------------------------ main
    def export(
        self,
        out_dir: str | os.PathLike,
        opt: ExportOptions,
        *,
        on_progress: Callable[[int, int, str], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> ExportReport:
        if opt.format not in FORMATS:
            raise ExportError(f"unknown format {opt.format!r} (one of {', '.join(FORMATS)})")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rep = ExportReport(out, opt.format)
        videos = self._videos(opt)
        names = self._names(videos, opt)
        rep.names = names
        if opt.format == "manifest":
            self._export_manifest(out, videos, names, opt, rep, on_progress, should_cancel)
            return self._finish(rep, opt)
        if opt.format == "endofm-pretrain":
            self._export_pretrain(out, videos, names, opt, rep, on_progress, should_cancel)
            return self._finish(rep, opt)
        dropped: set[str] = {ALWAYS_DROPPED}
        col = Collection(layout=opt.format)
        per_video: list[tuple[Video, VideoItem]] = []
        ext = "png" if opt.image_format == "png" else "jpg"
        if opt.format in STREAMED:
            # written as they are read, a range of frames at a time: memory does not grow with a video's length
            per_video = self._stream(out, videos, names, opt, rep, dropped, ext, on_progress, should_cancel)
            if rep.cancelled:
                return self._finish(rep, opt)
        else:
            for i, v in enumerate(videos):
                if should_cancel is not None and should_cancel():
                    rep.cancelled = True
                    return self._finish(rep, opt)
                if on_progress:
                    on_progress(i, len(videos), names[v.id])
                labels = self._labels(v, opt)
                item = to_item(v, labels, names[v.id], dropped)
                rep.labels += item.n_labels()
                col.videos.append(item)
                per_video.append((v, item))
            rep.videos = len(per_video)
            if opt.format not in STATE_FORMATS and any(
                a.state == ReviewState.SUGGESTED
                for _v, it in per_video
                for a in (*it.masks, *it.boxes, *it.segments)
            ):
                dropped.add(STATE_DROPPED)
            writer = getattr(self, "_w_" + opt.format.replace("-", "_"))
            writer(out, col, per_video, opt, rep, dropped, ext)
        if opt.frames or opt.format.startswith("yolo"):
            sub = {
                "coco": "images",
                "coco-polygons": "images",
                "yolo-det": "images",
                "yolo-seg": "images",
                "voc": "JPEGImages",
            }.get(opt.format, "frames")
            for v, item in per_video:
                if should_cancel is not None and should_cancel():
                    rep.cancelled = True
                    break
                frames = range(v.frame_count) if opt.all_frames else sorted(_labelled_frames(item))
                if opt.format in STREAMED:
                    frames = (
                        range(v.frame_count) if opt.all_frames else sorted(item.metadata.get("frames", ()))
                    )
                if opt.frames:
                    try:
                        rep.frames_written += self._write_frames(
                            v, frames, out / sub / item.name, ext, opt, rep
                        )
                    except (VideoError, OSError) as e:
                        rep.failed.append((item.name, f"frames not written: {e}"))
            if not opt.frames and opt.format.startswith("yolo"):
                dropped.add("frame images (export with frames for a dataset YOLO tools can train on)")
        rep.dropped = sorted(dropped)
        if on_progress:
            on_progress(len(videos), len(videos), "")
        return self._finish(rep, opt)

    def _finish(self, rep: ExportReport, opt: ExportOptions) -> ExportReport:
        doc = {
            "format": rep.format,
            "videos": rep.videos,
            "labels": rep.labels,
            "frames_written": rep.frames_written,
            "dropped": rep.dropped,
            "selection": list(opt.states) if opt.states else _selection(opt),
            "cancelled": rep.cancelled,
            "failed": [list(f) for f in rep.failed],
        }
        p = rep.out_dir / "export_report.json"
        p.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        rep.files.append(p)
        return rep

    # ------------------------------------------------------------------ streamed writers
    def _chunks(self, v: Video, name: str, opt: ExportOptions, dropped: set[str]):
        """(segments and video labels, then) the video's masks and boxes as :class:`VideoItem` parts of
        :data:`STREAM_FRAMES` frames each, in frame order. A part's open suggestions are built straight from the
        stored frame outputs (no label object each: a procedure has a million); on a frame they come before the
        label rows, as :meth:`Store.labels_for_video` orders them."""
        states = self._states(opt)
        runs = None if opt.run_ids is None else set(opt.run_ids)

        def keep(labels: list[Label]) -> list[Label]:
            return labels if runs is None else [x for x in labels if x.run_id in runs]

        yield to_item(
            v,
            keep(
                self.store.labels_for_video(
                    v.id, kinds=[LabelKind.SEGMENT, LabelKind.VIDEO_CLASS], states=states
                )
            ),
            name,
            dropped,
        )
        with_suggestions = states is None or ReviewState.SUGGESTED in states
        prov = Provenance(f"video {v.id}")
        for a in range(0, max(v.frame_count, 1), STREAM_FRAMES):
            span = (a, a + STREAM_FRAMES)
            kinds = [LabelKind.MASK, LabelKind.BOX]
            item = to_item(
                v,
                keep(
                    self.store.labels_for_video(
                        v.id, kinds=kinds, states=states, frames=span, suggestions=False
                    )
                ),
                name,
                dropped,
            )
            if with_suggestions:
                rows, consumed = self.store.suggestion_rows(v.id, frames=span, kinds=kinds)
                masks, boxes = _suggested(rows, consumed, runs, prov)
                item.masks[:0] = masks
                item.boxes[:0] = boxes
            yield item

    def _stream(self, out, videos, names, opt, rep, dropped, ext, on_progress, should_cancel):
        """Write a COCO / CVAT export a part at a time; returns ``(video, item)`` pairs whose items hold no
        annotations, only ``metadata["frames"]``: the labelled frames (for writing frame images)."""
        per_video: list[tuple[Video, VideoItem]] = []
        writer = _CocoStream(out, opt, ext) if opt.format.startswith("coco") else _CvatStream(out)
        try:
            for i, v in enumerate(videos):
                if on_progress:
                    on_progress(i, len(videos), names[v.id])
                shell = VideoItem(name=names[v.id], width=v.width, height=v.height, num_frames=v.frame_count,
                                  fps=v.fps)  # fmt: skip
                frames: set[int] = set()
                writer.start_video(v, shell)
                for item in self._chunks(v, names[v.id], opt, dropped):
                    if should_cancel is not None and should_cancel():
                        rep.cancelled = True
                        writer.abort()
                        return per_video
                    rep.labels += item.n_labels()
                    frames.update(_labelled_frames(item))
                    if opt.format not in STATE_FORMATS and any(
                        a.state == ReviewState.SUGGESTED for a in (*item.masks, *item.boxes, *item.segments)
                    ):
                        dropped.add(STATE_DROPPED)
                    writer.add(item, dropped)
                writer.end_video(dropped)
                shell.metadata["frames"] = frames
                per_video.append((v, shell))
            rep.files += writer.finish(dropped)
        except BaseException:
            writer.abort()
            raise
        rep.videos = len(per_video)
        return per_video

    def _states(self, opt: ExportOptions) -> list[ReviewState] | None:
        if opt.states:
            return [ReviewState(s) for s in opt.states]
        if _selection(opt) == "reviewed":
            return list(REVIEWED)
        if _selection(opt) != "all":
            raise ExportError(
                f"selection must be 'all' or 'reviewed' (or give states), got {opt.selection!r}"
            )
        return None

    # ------------------------------------------------------------------ writers
    def _w_yolo(self, out, col, per_video, opt, rep, dropped, ext, mode):
        classes = sorted({a.label for v in col.videos for a in (*v.masks, *v.boxes)})
        idx = {c: i for i, c in enumerate(classes)}
        (out / "data.yaml").write_text(
            "path: .\ntrain: images\nval: images\nframe_index_base: 0  # file names are 0-based frame numbers\nnames:\n"
            + "".join(f"  {i}: {json.dumps(c)}\n" for i, c in enumerate(classes)),
            encoding="utf-8",
        )
        rep.files.append(out / "data.yaml")
        for v, item in per_video:
            frames = range(v.frame_count) if opt.all_frames else sorted(_labelled_frames(item))
            boxes, masks = _by_frame(item.boxes), _by_frame(item.masks)
            d = out / "labels" / item.name
            d.mkdir(parents=True, exist_ok=True)
            for f in frames:
                text, dr = yolo.yolo_label_text(
                    boxes.get(f, []), masks.get(f, []), v.width, v.height, idx, mode
                )
                dropped.update(dr)
                (d / f"{f:06d}.txt").write_text(text, encoding="utf-8")
                rep.files.append(d / f"{f:06d}.txt")
            if item.segments or item.video_labels:
                dropped.add("segments and video labels (YOLO has no temporal labels; use the CSV export)")

    def _w_yolo_det(self, *a):
        self._w_yolo(*a, mode="det")

    def _w_yolo_seg(self, *a):
        self._w_yolo(*a, mode="seg")

    def _w_voc(self, out, col, per_video, opt, rep, dropped, ext):
        for v, item in per_video:
            d = out / "Annotations" / item.name
            d.mkdir(parents=True, exist_ok=True)
            boxes = _by_frame(item.boxes)
            if item.masks:
                dropped.add("masks (Pascal VOC XML carries boxes; use the PNG mask export)")
            if item.segments or item.video_labels:
                dropped.add("segments and video labels (VOC has no temporal labels; use the CSV export)")
            if any(b.track_id is not None for b in item.boxes):
                dropped.add("track ids")
            for f in sorted(boxes):
                text, dr = voc.voc_xml(
                    f"{f:06d}.{ext}",
                    v.width,
                    v.height,
                    [(b.label, b.bbox, b.score) for b in boxes[f]],
                    item.name,
                )
                dropped.update(dr)
                (d / f"{f:06d}.xml").write_text(text, encoding="utf-8")
                rep.files.append(d / f"{f:06d}.xml")

    def _w_png_masks(self, out, col, per_video, opt, rep, dropped, ext):
        import cv2

        classes = ["background"] + sorted({m.label for v in col.videos for m in v.masks})
        idx = {c: i for i, c in enumerate(classes)}
        for v, item in per_video:
            d = out / "masks" / item.name
            maskdir.write_labelmap(d, classes)
            if item.boxes:
                dropped.add("boxes (a mask image carries masks only; use COCO, YOLO or VOC)")
            if item.segments or item.video_labels:
                dropped.add("segments and video labels (use the CSV export)")
            masks = _by_frame(item.masks)
            for f in sorted(masks):
                img, dr = maskdir.label_png(masks[f], v.height, v.width, idx)
                dropped.update(dr)
                p = d / f"{f:06d}.png"
                if not cv2.imwrite(str(p), img):
                    raise OSError(f"{p}: cannot be written")
                rep.files.append(p)

    def _w_csv(self, out, col, per_video, opt, rep, dropped, ext):
        if any(v.masks or v.boxes for v in col.videos):
            dropped.add(
                "masks and boxes (the CSV holds segments and video labels; use another format for them)"
            )
        p1, p2 = out / "segments.csv", out / "video_labels.csv"
        p1.write_text(tables.segment_csv_text(col), encoding="utf-8")
        p2.write_text(tables.video_label_csv_text(col), encoding="utf-8")
        rep.files += [p1, p2]

    # ------------------------------------------------------------------ manifest
    def _export_manifest(self, out, videos, names, opt, rep, on_progress, should_cancel):
        from core_model.data import manifest as mf
        from endoreview.services.manifest import snapshot_manifest

        if _selection(opt) != "reviewed" or opt.states or opt.run_ids:
            rep.dropped.append(
                "the manifest holds reviewed labels only (accepted, edited, manual; rejected as negatives)"
            )
        split = {}
        for v in videos:
            s = ((v.meta or {}).get("import") or {}).get("split")
            split[v.id] = s if s in mf.SPLITS else "unassigned"
        m = snapshot_manifest(self.store, [v.id for v in videos], split=split, library=self.library)
        by_id = {str(v.id): v for v in videos}
        new_videos = []
        private = opt.pseudonymize or opt.blank_text or opt.strip_metadata
        for i, mv in enumerate(m.videos):
            if should_cancel is not None and should_cancel():
                rep.cancelled = True
                return
            if on_progress:
                on_progress(i, len(m.videos), names[int(mv.id)])
            v = by_id[mv.id]
            path = mv.path
            if private or opt.frames:
                target = out / "videos" / f"{names[v.id]}.mp4"
                try:
                    self._reencode(v, target, opt)
                except (VideoError, OSError) as e:
                    rep.failed.append((names[v.id], f"video not written: {e}"))
                    continue
                path = f"videos/{target.name}"
                rep.frames_written += v.frame_count
            new_videos.append(replace(mv, id=names[v.id], path=path))
        source = {"kind": "endoreview-export"} if private else dict(m.source)
        m = replace(m, videos=tuple(new_videos), source=source)
        p = mf.save_manifest(m, out / "manifest.json")
        rep.files.append(p)
        rep.videos = len(new_videos)
        rep.labels = sum(len(f.masks) + len(f.boxes) for v in new_videos for f in v.frames) + sum(
            len(v.segments) + (v.video_label is not None) for v in new_videos
        )
        rep.dropped.append(ALWAYS_DROPPED)
        if private:
            rep.dropped.append(
                "source video files (re-encoded as H.264/MPEG-4 without their container metadata)"
            )

    # ------------------------------------------------------------------ frames
    def _export_pretrain(self, out, videos, names, opt, rep, on_progress, should_cancel):
        """Endo-FM's pre-training list: ``train.csv`` with ``<video path>,-1`` per video (reference §4.1).
        Endo-FM decodes with PyAV, so image-sequence videos (and every video when privacy options are on) are
        written as MP4 under ``videos/`` and listed relative to the list."""
        private = opt.pseudonymize or opt.blank_text or opt.strip_metadata
        lines = []
        for i, v in enumerate(videos):
            if should_cancel is not None and should_cancel():
                rep.cancelled = True
                break
            if on_progress:
                on_progress(i, len(videos), names[v.id])
            src = self.library.resolve_path(v)
            if private or src.is_dir():
                target = out / "videos" / f"{names[v.id]}.mp4"
                try:
                    self._reencode(v, target, opt)
                except (VideoError, OSError) as e:
                    rep.failed.append((names[v.id], f"video not written: {e}"))
                    continue
                rep.frames_written += v.frame_count
                lines.append(f"videos/{target.name}")
            else:
                lines.append(str(src))
            rep.videos += 1
        p = out / "train.csv"
        p.write_text(tables.pretrain_csv_text(lines), encoding="utf-8")
        rep.files.append(p)
        rep.dropped += [
            ALWAYS_DROPPED,
            "every label (pre-training is self-supervised: the list holds videos only)",
        ]

    def _reader(self, v: Video):
        from core_model.video import VideoReader

        return VideoReader(self.library.resolve_path(v))

    def _blank(self, v: Video, opt: ExportOptions):
        rect = (v.meta or {}).get(TEXT_REGION_KEY) if opt.blank_text else None
        return tuple(int(c) for c in rect) if rect else None

    def _write_frames(
        self, v: Video, frames, dest: Path, ext: str, opt: ExportOptions, rep: ExportReport
    ) -> int:
        import cv2

        dest.mkdir(parents=True, exist_ok=True)
        rect = self._blank(v, opt)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
        n = 0
        frames = list(frames)
        with self._reader(v) as r:
            for start in range(0, len(frames), 32):
                idx = frames[start : start + 32]
                batch = r.get_batch(idx)  # [K, H, W, 3] RGB
                for f, img in zip(idx, batch):
                    img = _apply_blank(img, rect)
                    p = dest / f"{f:06d}.{ext}"
                    if not cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params):
                        raise OSError(f"{p}: cannot be written")
                    n += 1
        return n

    def _reencode(self, v: Video, target: Path, opt: ExportOptions) -> None:
        from core_model.video import write_video

        rect = self._blank(v, opt)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._reader(v) as r:
            write_video(target, (_apply_blank(r[i], rect) for i in range(len(r))), fps=v.fps)


#: formats written as they are read, a part of a video at a time (bounded memory at procedure scale)
STREAMED = ("coco", "coco-polygons", "cvat-video")
#: frames of labels read and written at once by a streamed export
STREAM_FRAMES = 512


class _CocoStream:
    """A COCO document written as it is built: images to ``annotations.json`` (temporary name), annotations to a
    side file, joined at the end; categories (numbered as they are first seen) last. Bounded memory."""

    def __init__(self, out: Path, opt: ExportOptions, ext: str):
        self.out, self.opt, self.ext = out, opt, ext
        self.polygons = opt.format == "coco-polygons"
        self.final = out / "annotations.json"
        self.main_path = out / ".annotations.json.part"
        self.ann_path = out / ".annotations.part"
        self.main = open(self.main_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish/abort
        self.anns = open(self.ann_path, "w", encoding="utf-8")  # noqa: SIM115
        self.cat_id: dict[str, int] = {}
        self.ids = [0, 0]
        self.videos: list[dict] = []
        self.n_images = self.n_anns = 0
        self.vi = 0
        info = {"frame_index_base": 0} if opt.strip_metadata else {
            "description": "exported by EndoReview", "frame_index_base": 0}  # fmt: skip
        self.main.write('{"info": ' + json.dumps(info) + ', "images": [')

    def start_video(self, v: Video, shell: VideoItem) -> None:
        self.vi += 1
        self.videos.append({"id": self.vi, "name": shell.name})

    def add(self, item: VideoItem, dropped: set[str]) -> None:
        sub = "images"
        images, anns = coco.coco_frames(
            item,
            self.vi,
            self.cat_id,
            lambda v, f: f"{sub}/{v.name}/{f:06d}.{self.ext}",
            self.ids,
            dropped,
            normalised=True,  # the store keeps every mask in the codec's normal form
            as_text=not self.polygons,
        )
        if self.polygons and anns:
            doc, d = coco.coco_polygon_document({"annotations": anns})
            anns = [json.dumps(a) for a in doc["annotations"]]
            dropped.update(d)
        if images:  # one encoder call per part, its brackets dropped
            self.main.write((", " if self.n_images else "") + json.dumps(images)[1:-1])
            self.n_images += len(images)
        if anns:  # each annotation's JSON text
            self.anns.write((", " if self.n_anns else "") + ", ".join(anns))
            self.n_anns += len(anns)

    def end_video(self, dropped: set[str]) -> None:
        pass

    def finish(self, dropped: set[str]) -> list[Path]:
        self.anns.close()
        self.main.write('], "annotations": [')
        with open(self.ann_path, encoding="utf-8") as f:
            shutil.copyfileobj(f, self.main, 1 << 20)
        cats = [{"id": i, "name": n, "supercategory": "lesion"} for n, i in sorted(self.cat_id.items())]
        self.main.write(
            '], "videos": ' + json.dumps(self.videos) + ', "categories": ' + json.dumps(cats) + "}"
        )
        self.main.close()
        self.ann_path.unlink(missing_ok=True)
        os.replace(self.main_path, self.final)
        return [self.final]

    def abort(self) -> None:
        for f in (self.main, self.anns):
            f.close()
        self.main_path.unlink(missing_ok=True)
        self.ann_path.unlink(missing_ok=True)


class _CvatStream:
    """One CVAT for video 1.1 file per video, written a part at a time (:class:`cvat.CvatVideoWriter`)."""

    def __init__(self, out: Path):
        self.out = out
        self.files: list[Path] = []
        self.cur: cvat.CvatVideoWriter | None = None

    def start_video(self, v: Video, shell: VideoItem) -> None:
        self.cur = cvat.CvatVideoWriter(
            self.out / f"{shell.name}.xml", shell.name, v.width, v.height, v.frame_count
        )

    def add(self, item: VideoItem, dropped: set[str]) -> None:
        assert self.cur is not None
        if item.segments or item.video_labels:
            dropped.add("segments and video labels (use the CSV export)")
        self.cur.add(item.boxes, item.masks)

    def end_video(self, dropped: set[str]) -> None:
        assert self.cur is not None
        self.files.append(self.cur.finish(dropped))
        self.cur = None

    def finish(self, dropped: set[str]) -> list[Path]:
        return self.files

    def abort(self) -> None:
        if self.cur is not None:
            self.cur.abort()


def _selection(opt: ExportOptions) -> str:
    if opt.selection is not None:
        return opt.selection
    return "all" if opt.run_ids is not None else "reviewed"


# ====================================================================== store -> IR
def to_item(v: Video, labels: Sequence[Label], name: str, dropped: set[str]) -> VideoItem:
    item = VideoItem(name=name, width=v.width, height=v.height, num_frames=v.frame_count, fps=v.fps)
    prov = Provenance(f"video {v.id}")
    for lab in labels:
        if lab.state == ReviewState.REJECTED:
            dropped.add("rejected labels (negatives; only the training manifest can express them)")
            continue
        st = str(lab.state)
        if lab.kind == LabelKind.MASK and lab.rle is not None:
            item.masks.append(
                MaskAnn(lab.frame, lab.class_name, dict(lab.rle), prov, lab.track_id, lab.score, st)
            )
        elif lab.kind == LabelKind.BOX and lab.bbox is not None:
            item.boxes.append(
                BoxAnn(lab.frame, lab.class_name, tuple(lab.bbox), prov, lab.track_id, lab.score, st)
            )
        elif lab.kind == LabelKind.SEGMENT:
            item.segments.append(
                SegmentAnn(lab.start_frame, lab.end_frame, lab.class_name, prov, lab.score, st)
            )
        elif lab.kind == LabelKind.VIDEO_CLASS:
            item.video_labels.append(VideoLabelAnn(lab.class_name, prov, lab.score, st))
    return item


def _suggested(
    rows: Sequence[tuple], consumed: set[int], runs: set[int] | None, prov: Provenance
) -> tuple[list[MaskAnn], list[BoxAnn]]:
    """The open suggestions of ``frame_outputs`` rows (``Store.suggestion_rows``) as annotations, in the order
    :meth:`Store.suggestions` lists them (by frame and run, masks then boxes in the model's order), leaving out
    items a label row stands for (``consumed`` refs) and runs not in ``runs``; what :func:`to_item` would make of
    them, without a label object in between."""
    masks: list[MaskAnn] = []
    boxes: list[BoxAnn] = []
    sug = str(ReviewState.SUGGESTED)
    for run_id, frame, _video_id, masks_z, box_classes, boxes_z, _mv in rows:
        if runs is not None and run_id not in runs:
            continue
        ms, arr, names = fo.unpack_raw(masks_z, box_classes, boxes_z)
        base = fo.make_ref(run_id, frame, 0)
        check = bool(consumed) and any(base <= c < base + fo.MAX_SLOTS for c in consumed)
        for i, m in enumerate(ms):
            if check and base + i in consumed:
                continue
            name, score, h, w, counts, track = m[:6]
            rle = {"size": [h, w], "counts": counts}
            masks.append(MaskAnn(frame, name, rle, prov, track, score, sug, fo.mask_extent(m)))
        if arr is not None:
            for i, bbox, cls, score, track in fo.box_values(arr):
                if check and base + fo.BOX_SLOT + i in consumed:
                    continue
                boxes.append(BoxAnn(frame, names[cls], bbox, prov, track, score, sug))
    return masks, boxes


def _labelled_frames(item: VideoItem) -> set[int]:
    return {a.frame for a in (*item.masks, *item.boxes)}


def _by_frame(anns: list) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    for a in anns:
        out[a.frame].append(a)
    return out


def _apply_blank(img: np.ndarray, rect: tuple[int, ...] | None) -> np.ndarray:
    if rect is None:
        return img
    x0, y0, x1, y1 = rect
    img = np.array(img, copy=True)
    img[y0:y1, x0:x1] = 0
    return img
