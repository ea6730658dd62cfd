"""Recognise what a user points at and read it into a :class:`Collection`.

Layouts (first match wins), names as used in the docs and the CLI ``--layout``:
``polypdiag``, ``cvc``, ``kumc``, ``kvasir``, ``yolo``, ``case-folders`` for folders (and zips of them);
``coco``, ``cvat-video``, ``voc``, ``segment-csv``, ``video-label-csv``, ``pretrain-csv``, ``clip-list`` for files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from endoreview.interchange.formats.coco import read_coco
from endoreview.interchange.formats.cvat import read_cvat_video
from endoreview.interchange.formats.tables import add_video_labels, read_segment_csv, read_video_label_csv
from endoreview.interchange.formats.voc import read_voc, read_voc_folder
from endoreview.interchange.formats.yolo import read_yolo
from endoreview.interchange.layouts import cvc, kumc, simple
from endoreview.interchange.layouts.archive import extract_zip, is_archive
from endoreview.interchange.model import BoxAnn, Collection, InterchangeError, VideoItem
from endoreview.interchange.util import list_images, set_frame_names

FOLDER_LAYOUTS = ("polypdiag", "cvc", "kumc", "kvasir", "yolo", "voc", "case-folders")
FILE_FORMATS = (
    "coco",
    "manifest",
    "cvat-video",
    "voc",
    "segment-csv",
    "video-label-csv",
    "pretrain-csv",
    "clip-list",
)


def _refuse_mask_videos(root: Path, col: Collection) -> None:
    """A layout that found only "videos" whose frames are masks (a folder of per-video mask folders, a GT/ folder)
    would import masks as procedures: refuse, naming the folder."""
    from endoreview.media.masks import mask_only_reason

    folders = [v for v in col.videos if v.frame_files or (v.source is not None and Path(v.source).is_dir())]
    if not folders or len(folders) != len(col.videos) or any(v.masks or v.boxes for v in col.videos):
        return
    for v in folders[:3]:
        frames = v.frame_files or None
        why = mask_only_reason(Path(v.source) if v.source is not None else root, frames)
        if why is None:
            return
    raise InterchangeError(
        root,
        f"every video found here ({len(folders)}) is a folder of black-and-white masks, not of video frames — "
        "these look like ground-truth masks; import the dataset's root folder (with its frames) instead",
    )


def detect_folder(root: Path) -> str | None:
    if simple.find_polypdiag(root):
        return "polypdiag"
    if cvc.find_root(root):
        return "cvc"
    if kumc.find_root(root):
        return "kumc"
    if simple.find_kvasir(root) and (
        (simple.find_kvasir(root) / "kavsir_bboxes.json").is_file()
        or not (simple.find_kvasir(root) / "labels").is_dir()
    ):
        return "kvasir"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "yolo"
    if (root / "Annotations").is_dir() and any((root / "Annotations").rglob("*.xml")):
        return "voc"
    if simple.find_case_folders(root) or simple.find_nested_case_roots(root):
        return "case-folders"
    return None


def detect_file(path: Path) -> str | None:
    suf = path.suffix.lower()
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    if suf == ".json":
        return "manifest" if "endoreview.training-manifest" in text else "coco"
    if suf == ".xml":
        if "<annotations" in text:
            return "cvat-video"
        return "voc"
    first = text.splitlines()[0].strip().lower() if text else ""
    if suf == ".csv" or "," in first:
        cols = [c.strip() for c in first.split(",")]
        if {"video", "start_frame", "end_frame", "label"} <= set(cols):
            return "segment-csv"
        if cols[:2] == ["video", "label"]:
            return "video-label-csv"
        if len(cols) == 2 and cols[1] == "-1":
            return "pretrain-csv"
        if len(cols) == 2:
            return "video-label-csv"
    if suf == ".txt" and len(first.split()) == 4:
        return "clip-list"
    return None


def read_path(
    path: str | os.PathLike,
    *,
    layout: str | None = None,
    work_dir: str | os.PathLike | None = None,
    base: int = 1,
) -> Collection:
    """Read a dataset folder, a zip of one, or an annotation file. ``work_dir`` receives extracted archives."""
    path = Path(path)
    if not path.exists():
        raise InterchangeError(path, "does not exist")
    if is_archive(path):
        if work_dir is None:
            raise InterchangeError(path, "a zip archive needs a folder to extract into")
        root = extract_zip(path, work_dir)
        col = read_path(root, layout=layout, base=base)
        col.issues.insert(0, _note(path, f"extracted to {root}"))
        return col
    if path.is_dir():
        layout = layout or detect_folder(path)
        readers: dict[str, Callable[[Path], Collection]] = {
            "polypdiag": simple.read_polypdiag,
            "cvc": cvc.read_cvc,
            "kumc": kumc.read_kumc,
            "kvasir": simple.read_kvasir,
            "yolo": read_yolo,
            "case-folders": simple.read_case_folders,
            "voc": read_voc_folder,
        }
        if layout not in readers:
            raise InterchangeError(
                path,
                f"no known dataset layout here (accepted: {', '.join(FOLDER_LAYOUTS)}; see docs/interchange.md)",
            )
        col = readers[layout](path)
        _refuse_mask_videos(path, col)
        return col
    layout = layout or detect_file(path)
    if layout == "coco":
        return read_coco(path)
    if layout == "manifest":
        from endoreview.interchange.manifest import read_manifest_collection

        return read_manifest_collection(path)
    if layout == "cvat-video":
        return read_cvat_video(path)
    if layout == "voc":
        return read_voc_file(path)
    if layout == "segment-csv":
        return read_segment_csv(path)
    if layout == "video-label-csv":
        col = Collection(layout="video-label-csv")
        add_video_labels(col, read_video_label_csv(path))
        return col
    if layout in ("pretrain-csv", "clip-list"):
        return simple.read_pretrain_list(path, base=base)
    raise InterchangeError(path, f"unrecognised file (accepted: {', '.join(FILE_FORMATS)})")


def read_voc_file(path: Path) -> Collection:
    """A single VOC XML: its image (``filename`` beside it) is a one-frame sequence."""
    info, objs, issues = read_voc(path)
    col = Collection(layout="voc", issues=list(issues))
    image = None
    if info["filename"]:
        from endoreview.interchange.util import safe_join

        # <filename> is relative to the XML's folder; "../" or an absolute path must not reach outside the dataset
        cand = safe_join(path.parent, info["filename"], path, field="annotation/filename")
        image = cand if cand.is_file() else None
    if image is None:
        same = [p for p in list_images(path.parent) if p.stem == path.stem]
        image = same[0] if same else None
    item = VideoItem(
        name=path.stem,
        frame_files=[image] if image else None,
        num_frames=1,
        width=info["width"],
        height=info["height"],
    )
    item.boxes = [BoxAnn(0, label, box, prov, None, score) for label, box, prov, score in objs]
    set_frame_names(item, [image.name if image else path.name])
    if info["frame_index_base"] is not None:
        item.metadata["frame_name_base"] = info["frame_index_base"]
    col.videos.append(item)
    return col


def _note(path: Path, text: str):
    from endoreview.interchange.model import Issue

    return Issue(str(path), text, severity="info")
