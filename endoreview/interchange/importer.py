"""Import into the label store, through the services: videos, DICOM videos, datasets, annotation files.

Units and atomicity. The atomic unit is one video with its labels (datasets, video folders) or one annotation file
(``import_annotations``). A unit is parsed and validated completely *before* anything is written (frames within the
video, masks of the video's size, boxes inside the frame, segments inside the video, every RLE decoded and its counts
checked against its size, numbers finite and within range); then all of its labels, and the video metadata that
records where they came from, are written in **one transaction**. A failure or a kill (SIGKILL, power loss) part-way
therefore leaves nothing of the unit: no labels, no change sets, no audit rows. A video the unit created is removed
again when the unit fails; after a kill it stays as a plain video without the unit's labels, and importing again
completes it (the labels are not yet recorded as imported, so they are written; they are never written twice).
The store converts and validates the labels before it takes the write lock, so a unit of 1,500 masks holds the lock
for a fraction of a second. Cancelling stops between units; the unit in progress is not written.

Labels enter with origin ``imported``; state ``manual`` (dataset ground truth), or ``suggested`` for annotations that
carry a model ``score`` (a results file), unless ``state`` is given. Provenance: each unit's change set summary names
the source file(s), and every label records its own in ``Label.provenance``: the file, the line (1-based) or field
within it, the format it was read as (the layout name, e.g. ``coco``, ``cvat-video``, ``kvasir-seg``) and the
importer's version (:data:`IMPORTER_VERSION`); :func:`provenance_of` reads it back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core_model.contract import rle_normalise
from endoreview import __version__
from endoreview.interchange.detect import detect_file, read_path
from endoreview.interchange.dicom import extract_dicom_video, is_dicom
from endoreview.interchange.formats.cvat import read_cvat_video
from endoreview.interchange.model import (
    Collection,
    InterchangeError,
    Issue,
    Provenance,
    VideoItem,
)
from endoreview.interchange.raster import IMAGE_EXTS
from endoreview.interchange.units import (
    already_imported,
    describe_sources,
    expand_video_paths,
    is_manifest,
    is_mask_folder,
    item_keys,
    label_sources,
    materialise_sequence,
    safe_name,
    validate_item,
    video_names,
)
from endoreview.interchange.util import is_junk, remap_frames_by_name
from endoreview.services.library import LibraryService, VideoImportError, read_metadata
from endoreview.store import Store, StoreError
from endoreview.store.records import Label, LabelKind, LabelOrigin, NewLabel, ReviewState, Video

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]
#: recorded with every imported label (``provenance["importer"]``): which importer read it
IMPORTER_VERSION = f"EndoReview {__version__} interchange"


class Cancelled(Exception):
    pass


@dataclass
class ImportReport:
    """What an import did. ``failed``/``skipped`` hold (what, reason); nothing in them changed the store."""

    videos_created: list[int] = field(default_factory=list)
    videos_existing: list[int] = field(default_factory=list)
    labels_added: int = 0
    units_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def summary(self) -> str:
        s = (
            f"{len(self.videos_created)} video(s) imported, {len(self.videos_existing)} already present, "
            f"{self.labels_added} label(s) added"
        )
        if self.failed:
            s += f", {len(self.failed)} failed"
        if self.skipped:
            s += f", {len(self.skipped)} skipped"
        if self.cancelled:
            s += " (cancelled)"
        return s


def provenance_of(label: Label) -> Provenance | None:
    """Where an imported label came from (file, line/field, format, importer version); None for other labels."""
    return Provenance.from_json(label.provenance) if label.provenance else None


class Importer:
    """Import files into one project. ``work_dir`` holds extracted archives, DICOM streams and frame sequences."""

    def __init__(
        self,
        store: Store,
        project_id: int | None = None,
        *,
        library: LibraryService | None = None,
        work_dir: str | os.PathLike | None = None,
        chunk_size: int = 500,
        state: ReviewState | str | None = None,
    ):
        self.store = store
        self.library = library or LibraryService(store)
        if project_id is None:
            from endoreview.services.projects import ProjectService

            project_id = ProjectService(store).default_project().id
        self.project_id = project_id
        if work_dir is None:
            from endoreview.paths import imports_dir

            work_dir = imports_dir()
        self.work_dir = Path(work_dir)
        self.chunk_size = max(1, int(chunk_size))  # obsolete: a unit is written in one transaction now
        self.state = ReviewState(state) if state else None

    # ================================================================== videos
    def import_videos(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> ImportReport:
        """Video files, DICOM video objects and image-sequence folders; folders are searched recursively.
        Files that are not videos are skipped and reported."""
        report = ImportReport()
        units, skipped = expand_video_paths(paths)
        report.skipped += skipped
        for i, p in enumerate(units):
            if should_cancel is not None and should_cancel():
                report.cancelled = True
                break
            if on_progress:
                on_progress(i, len(units), p.name)
            try:
                if p.is_file() and is_dicom(p):
                    self._import_dicom(p, report)
                else:
                    video, created = self.library.import_video(self.project_id, p)
                    (report.videos_created if created else report.videos_existing).append(video.id)
                report.units_done += 1
            except (VideoImportError, InterchangeError, StoreError, OSError) as e:
                report.failed.append((str(p), str(e)))
            except Exception as e:
                log.exception("importing %s failed", p)
                report.failed.append((str(p), f"{p}: could not be imported ({type(e).__name__}: {e})"))
        if on_progress:
            on_progress(len(units) if not report.cancelled else report.units_done, len(units), "")
        return report

    def _import_dicom(self, p: Path, report: ImportReport) -> None:
        dv = extract_dicom_video(p, self.work_dir / "dicom")
        video, created = self.library.import_video(self.project_id, dv.path)
        if created:
            meta = {**(video.meta or {}), "pseudonymous_id": dv.pseudo_id, "source_format": "dicom"}
            self.store.update_video(video.id, video.version, meta=meta)
        (report.videos_created if created else report.videos_existing).append(video.id)

    # ================================================================== datasets
    def import_dataset(
        self,
        path: str | os.PathLike,
        *,
        layout: str | None = None,
        base: int = 1,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> ImportReport:
        """A public dataset folder or zip (layouts in :mod:`endoreview.interchange.detect`): every sequence becomes
        a video with its labels, one unit each."""
        report = ImportReport()
        try:
            col = read_path(path, layout=layout, work_dir=self.work_dir / "archives", base=base)
        except InterchangeError as e:
            report.failed.append((str(path), str(e)))
            return report
        return self.import_collection(
            col, report=report, on_progress=on_progress, should_cancel=should_cancel
        )

    def import_collection(
        self,
        col: Collection,
        *,
        report: ImportReport | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> ImportReport:
        report = report or ImportReport()
        report.issues += col.issues
        report.issues += self._class_issues(col.videos)
        seq_root = (
            self.work_dir
            / "sequences"
            / safe_name(col.layout or "dataset")
            / safe_name(str(col.root.name if col.root else "root"))
        )
        for i, item in enumerate(col.videos):
            if should_cancel is not None and should_cancel():
                report.cancelled = True
                break
            if on_progress:
                on_progress(i, len(col.videos), item.name)
            try:
                self._import_video_unit(item, col.layout, seq_root, report, should_cancel)
                report.units_done += 1
            except Cancelled:
                report.cancelled = True
                break
            except (InterchangeError, VideoImportError, StoreError, OSError) as e:
                report.failed.append((item.name, str(e)))
            except Exception as e:
                log.exception("importing %s failed", item.name)
                report.failed.append(
                    (item.name, f"{item.name}: could not be imported ({type(e).__name__}: {e})")
                )
        if on_progress and not report.cancelled:
            on_progress(len(col.videos), len(col.videos), "")
        return report

    def _import_video_unit(
        self,
        item: VideoItem,
        layout: str,
        seq_root: Path,
        report: ImportReport,
        should_cancel: CancelFn | None,
    ) -> None:
        path = self._video_path(item, seq_root)
        try:
            md = read_metadata(path)
        except VideoImportError as e:
            raise InterchangeError(path, f"not a readable video ({e})") from None
        n, w, h = md["frame_count"], md["width"], md["height"]
        validate_item(item, n, w, h)
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        video, created = self.library.import_video(self.project_id, path)
        sources = label_sources(item)
        if not created and already_imported(self.store.imported_sources(video.id), sources):
            report.videos_existing.append(video.id)
            report.issues.append(
                Issue(
                    item.name,
                    f"labels already imported into video {video.id}; not added again",
                    severity="info",
                )
            )
            return
        info: dict[str, Any] = {
            "layout": layout,
            "name": item.name,
            **({"split": item.split} if item.split else {}),
        }
        if item.metadata:
            info["dataset_meta"] = {
                k: v
                for k, v in item.metadata.items()
                if k not in ("list_path", "frame_names", "frame_name_base")
            }
        extra = {video.id: {"import": info}} if created or "import" not in (video.meta or {}) else {}
        try:
            added = self._write_labels(
                [(video, item)], f"Import {layout}: {item.name}", should_cancel, layout, extra_meta=extra
            )
            if not added and extra:
                video = self.store.get_video(video.id)
                self.store.update_video(
                    video.id, video.version, meta={**(video.meta or {}), **extra[video.id]}
                )
        except BaseException:
            if created:
                self.store.remove_video(video.id, purge_labels=True)
            raise
        (report.videos_created if created else report.videos_existing).append(video.id)
        report.labels_added += added

    def _video_path(self, item: VideoItem, seq_root: Path) -> Path:
        if item.source is not None:
            return item.source
        if not item.frame_files:
            raise InterchangeError(item.name, "no frames and no video file")
        files = item.frame_files
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise InterchangeError(
                missing[0], f"frame image does not exist ({len(missing)} of {len(files)} missing)"
            )
        parent = files[0].parent
        from core_model.video import natural_key

        in_folder = sorted(
            (
                p
                for p in parent.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not is_junk(p.name)
            ),
            key=lambda p: natural_key(p.name),
        )
        if [p.resolve() for p in in_folder] == [f.resolve() for f in files]:
            return parent
        return materialise_sequence(files, seq_root / safe_name(item.name))

    # ================================================================== annotation files
    def import_annotations(
        self,
        path: str | os.PathLike,
        *,
        layout: str | None = None,
        video_id: int | None = None,
        base: int = 1,
        name_base: int | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> ImportReport:
        """Attach the labels of one annotation file (COCO, CVAT video, VOC, YOLO, segment/video-label CSV, manifest)
        to videos already in the project, matched by name (or all to ``video_id``). One file is one unit."""
        report = ImportReport()
        path = Path(path)
        try:
            if layout == "manifest" or (layout is None and path.suffix == ".json" and is_manifest(path)):
                from endoreview.interchange.manifest import read_manifest_collection

                col = read_manifest_collection(path)
            elif layout == "mask-folder" or (layout is None and is_mask_folder(path)):
                col = self._read_mask_folders(path, video_id, base)
            elif video_id is not None and (layout or detect_file(path)) == "coco":
                from endoreview.interchange.formats.coco import read_coco

                target = self.store.get_video(video_id)  # sizes checked against it before rasterising
                col = read_coco(path, frame_size=(target.width, target.height))
            elif video_id is not None and (layout or detect_file(path)) == "cvat-video":
                target = self.store.get_video(
                    video_id
                )  # CVAT shapes persist to the video's end: give its size
                col = read_cvat_video(
                    path, width=target.width, height=target.height, num_frames=target.frame_count
                )
            else:
                col = read_path(path, layout=layout, work_dir=self.work_dir / "archives", base=base)
            report.issues += col.issues
            pairs = self._match_videos(col, video_id, path)
            report.issues += self._class_issues([it for _, it in pairs])
            self._frames_from_names(pairs, name_base, path)
            for video, item in pairs:
                validate_item(item, video.frame_count, video.width, video.height)
            if on_progress:
                on_progress(0, 1, path.name)
            added = self._write_labels(pairs, f"Import {col.layout} {path.name}", should_cancel, col.layout)
        except Cancelled:
            report.cancelled = True
            return report
        except (InterchangeError, StoreError, OSError) as e:
            report.failed.append((str(path), str(e)))
            return report
        report.labels_added += added
        report.units_done += 1
        report.videos_existing += [v.id for v, _ in pairs]
        if on_progress:
            on_progress(1, 1, "")
        return report

    def _read_mask_folders(self, path: Path, video_id: int | None, base: int) -> Collection:
        """A mask folder (frame-numbered images, ``labelmap.json`` for label maps) for one video, or a folder of
        such folders named after the videos (what the PNG mask export writes)."""
        from endoreview.interchange.formats.maskdir import LABELMAP, read_mask_folder
        from endoreview.interchange.util import list_images

        col = Collection(layout="mask-folder", root=path)
        single = (path / LABELMAP).is_file() or bool(list_images(path))
        folders = (
            [path] if single else sorted(d for d in path.iterdir() if d.is_dir() and not is_junk(d.name))
        )
        by_name = {}
        if video_id is None:
            for v in self.store.list_videos(self.project_id):
                for key in video_names(v):
                    by_name.setdefault(key, []).append(v)
        for d in folders:
            if video_id is not None:
                video = self.store.get_video(video_id)
            else:
                cands = by_name.get(d.name, [])
                if len(cands) != 1:
                    raise InterchangeError(
                        d, f"mask folder {d.name!r} matches {len(cands)} videos; pass a video id"
                    )
                video = cands[0]
            masks = read_mask_folder(
                d,
                num_frames=video.frame_count,
                width=video.width,
                height=video.height,
                base=base,
                issues=col.issues,
            )
            col.videos.append(VideoItem(d.name, masks=masks))
        return col

    def _match_videos(
        self, col: Collection, video_id: int | None, path: Path
    ) -> list[tuple[Video, VideoItem]]:
        items = [v for v in col.videos if v.n_labels()]
        if video_id is not None:
            video = self.store.get_video(video_id)
            if len({v.name for v in items}) > 1:
                raise InterchangeError(
                    path, f"holds labels for {len(items)} videos; cannot attach them all to video {video_id}"
                )
            return [(video, it) for it in items]
        videos = self.store.list_videos(self.project_id)
        by_name: dict[str, list[Video]] = {}
        for v in videos:
            for key in video_names(v):
                by_name.setdefault(key, []).append(v)
        out = []
        for it in items:
            cands = {v.id: v for key in item_keys(it) for v in by_name.get(key, [])}
            if len(cands) != 1:
                reason = "matches no video in the project" if not cands else f"matches {len(cands)} videos"
                raise InterchangeError(
                    path, f"video {it.name!r} {reason}; import the video first or pass a video id"
                )
            out.append((next(iter(cands.values())), it))
        return out

    def _frames_from_names(self, pairs, name_base: int | None, path: Path) -> None:
        """Image-based files (COCO without frame ids, YOLO, VOC) index frames by position among the listed
        images. Attached to a video, that is only right when every frame is listed; otherwise the number in each
        file name is the frame (``name_base`` 0 or 1, or the base the file declares)."""
        for video, it in pairs:
            names = it.metadata.get("frame_names")
            if names is None:
                continue
            base = name_base if name_base is not None else it.metadata.get("frame_name_base")
            if base is not None:
                remap_frames_by_name(it, int(base), str(path))
            elif len(names) == video.frame_count:
                it.metadata.pop("frame_names")
            else:
                raise InterchangeError(
                    path,
                    f"lists {len(names)} image(s) of video {it.name!r}, which has {video.frame_count} frames, and gives "
                    "no frame numbers: pass name_base=0 or 1 (CLI --name-base) to take them from the file names",
                )

    def _class_issues(self, items: Sequence[VideoItem]) -> list[Issue]:
        """Class names the project's label set does not know (the labels are kept; the set can be extended)."""
        from endoreview.services.projects import ProjectService

        try:
            known = {c.name for c in ProjectService(self.store).label_set_of(self.project_id).classes}
        except StoreError:
            return []
        names = sorted({n for it in items for n in it.label_names()} - known)
        return [
            Issue(
                "label set", f"class {n!r} is not in the project's label set (labels kept)", severity="info"
            )
            for n in names
        ]

    # ================================================================== writing labels
    def _new_labels(self, video: Video, item: VideoItem, fmt: str) -> list[tuple[NewLabel, Provenance]]:
        out: list[tuple[NewLabel, Provenance]] = []

        def state_for(score: float | None) -> ReviewState:
            if self.state is not None:
                return self.state
            return ReviewState.SUGGESTED if score is not None else ReviewState.MANUAL

        def mk(kind: LabelKind, label: str, prov: Provenance, score: float | None, **kw: Any) -> None:
            prov = replace(prov, format=prov.format or fmt, importer=IMPORTER_VERSION)
            out.append(
                (
                    NewLabel(
                        video.id,
                        kind,
                        label,
                        origin=LabelOrigin.IMPORTED,
                        state=state_for(score),
                        score=score,
                        provenance=prov.to_json(),
                        **kw,
                    ),
                    prov,
                )
            )

        for a in item.video_labels:
            mk(LabelKind.VIDEO_CLASS, a.label, a.provenance, a.score)
        for a in item.segments:
            mk(LabelKind.SEGMENT, a.label, a.provenance, a.score, start_frame=a.start, end_frame=a.end)
        for a in sorted(item.masks, key=lambda m: m.frame):
            mk(
                LabelKind.MASK,
                a.label,
                a.provenance,
                a.score,
                frame=a.frame,
                rle=rle_normalise(a.rle),
                track_id=a.track_id,
            )
        for a in sorted(item.boxes, key=lambda b: b.frame):
            mk(
                LabelKind.BOX,
                a.label,
                a.provenance,
                a.score,
                frame=a.frame,
                bbox=tuple(float(c) for c in a.bbox),
                track_id=a.track_id,
            )
        return out

    def _write_labels(
        self,
        pairs: Sequence[tuple[Video, VideoItem]],
        summary: str,
        should_cancel: CancelFn | None,
        fmt: str,
        *,
        extra_meta: dict[int, dict[str, Any]] | None = None,
    ) -> int:
        """Write all labels of one unit, each with its provenance (read as format ``fmt``), and ``extra_meta`` per
        video, in one transaction: all or nothing, also under a kill."""
        work = [(nl, prov) for video, item in pairs for nl, prov in self._new_labels(video, item, fmt)]
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        if not work:
            return 0
        extra_meta = extra_meta or {}

        def update_meta(vid: int, meta: dict[str, Any], labels: list) -> dict[str, Any]:
            return {**meta, **extra_meta.get(vid, {})}

        what = describe_sources(sorted({p.source for _, p in work}))
        self.store.add_labels(
            [nl for nl, _ in work], f"{summary} from {what}", update_meta=update_meta if extra_meta else None
        )
        return len(work)
