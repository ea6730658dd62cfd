"""Kvasir-SEG, PolypDiag, per-case frame folders (SUN-SEG, Endo-FM ``indexed/``) and the pre-training lists."""

from __future__ import annotations

import json
from pathlib import Path

from endoreview.interchange import raster
from endoreview.interchange.formats.maskdir import load_binary_mask, match_by_stem
from endoreview.interchange.formats.tables import read_clip_list, read_pretrain_csv
from endoreview.interchange.model import (
    BoxAnn,
    Collection,
    InterchangeError,
    Provenance,
    SegmentAnn,
    VideoItem,
    VideoLabelAnn,
)
from endoreview.interchange.util import check_box, is_junk, list_images, natural_key, safe_join

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
POLYPDIAG_CLASSES = {"0": "normal", "1": "abnormal"}


# ----------------------------------------------------------------------------------------------------------------
# Kvasir-SEG: images/<id>.jpg, masks/<id>.jpg, kavsir_bboxes.json
# ----------------------------------------------------------------------------------------------------------------
def find_kvasir(root: Path) -> Path | None:
    for d in (root, *(sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])):
        if (d / "images").is_dir() and (d / "masks").is_dir():
            return d
    return None


def read_kvasir(root: str | Path, *, label: str = "polyp") -> Collection:
    """One single-frame video per image (the images have different sizes). Masks are JPEGs: thresholded.

    ``kavsir_bboxes.json`` maps an image id to ``{"height", "width", "bbox": [{"label", "xmin", "ymin", "xmax",
    "ymax"}]}``; ``xmax``/``ymax`` are taken as exclusive pixel coordinates (how the file's boxes enclose the masks).
    """
    root = Path(root)
    base = find_kvasir(root)
    if base is None:
        raise InterchangeError(root, "not a Kvasir-SEG layout: no images/ and masks/ folders")
    col = Collection(layout="kvasir-seg", root=base)
    images = list_images(base / "images")
    masks = match_by_stem(images, list_images(base / "masks"))
    boxes_doc: dict = {}
    bpath = base / "kavsir_bboxes.json"
    if bpath.is_file():
        try:
            boxes_doc = json.loads(bpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InterchangeError(bpath, f"not valid JSON ({e.msg})", line=e.lineno) from None
        if not isinstance(boxes_doc, dict):
            raise InterchangeError(bpath, "top level must be an object of image id -> boxes")
    by_stem = {im.stem: k for k, im in enumerate(images)}
    for key in boxes_doc:
        if key not in by_stem:
            raise InterchangeError(
                bpath, f"image {key!r} is not in images/ (a label for a frame that does not exist)", field=key
            )
    for k, im in enumerate(images):
        h, w = raster.image_size(im)
        item = VideoItem(
            name=im.stem,
            frame_files=[im],
            num_frames=1,
            width=w,
            height=h,
            metadata={"dataset": "Kvasir-SEG"},
        )
        if k in masks:
            ann = load_binary_mask(masks[k], 0, label, h, w, col.issues)
            if ann is not None:
                item.masks.append(ann)
        entry = boxes_doc.get(im.stem)
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("bbox"), list):
                raise InterchangeError(bpath, "entry must have a 'bbox' list", field=im.stem)
            eh, ew = entry.get("height"), entry.get("width")
            if (eh, ew) != (h, w) and eh is not None:
                raise InterchangeError(
                    bpath, f"size {ew}x{eh} differs from the image's {w}x{h}", field=f"{im.stem}.height"
                )
            for j, b in enumerate(entry["bbox"]):
                where = f"{im.stem}.bbox[{j}]"
                try:
                    vals = tuple(float(b[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
                except (KeyError, TypeError, ValueError):
                    raise InterchangeError(
                        bpath, "box needs numeric xmin, ymin, xmax, ymax", field=where
                    ) from None
                prov = Provenance(str(bpath), field=where)
                item.boxes.append(
                    BoxAnn(0, str(b.get("label") or label), check_box(vals, w, h, prov, col.issues), prov)
                )
        col.videos.append(item)
    return col


# ----------------------------------------------------------------------------------------------------------------
# PolypDiag (Endo-FM): splits/{train,val}.txt with "<relative video path>,<label>", videos/
# ----------------------------------------------------------------------------------------------------------------
def find_polypdiag(root: Path) -> Path | None:
    for d in (root, *(sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])):
        if (d / "splits").is_dir() and (d / "videos").is_dir():
            return d
    return None


def read_polypdiag(root: str | Path) -> Collection:
    """Labels 0/1 become the video classes ``normal``/``abnormal``. A listed video that is missing is an error; a video
    in ``videos/`` that no split lists is imported unlabelled (split ``unassigned``)."""
    root = Path(root)
    base = find_polypdiag(root)
    if base is None:
        raise InterchangeError(root, "not a PolypDiag layout: no splits/ and videos/ folders")
    col = Collection(layout="polypdiag", root=base)
    vroot = base / "videos"
    listed: set[Path] = set()
    for split in ("train", "val", "test"):
        lst = base / "splits" / f"{split}.txt"
        if not lst.is_file():
            continue
        for ln, line in enumerate(lst.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(",")
            if len(parts) != 2:
                raise InterchangeError(lst, f"expected '<video>,<label>', got {line.strip()!r}", line=ln)
            rel, lab = parts[0].strip(), parts[1].strip()
            if lab not in POLYPDIAG_CLASSES:
                raise InterchangeError(lst, f"label must be 0 or 1, got {lab!r}", line=ln, field="label")
            path = safe_join(vroot, rel, lst, line=ln, field="video")
            if not path.is_file():
                raise InterchangeError(lst, f"video {rel!r} is not in videos/", line=ln, field="video")
            if path in listed:
                raise InterchangeError(lst, f"video {rel!r} is listed twice", line=ln)
            listed.add(path)
            name = str(Path(rel).with_suffix("")).replace("\\", "/")
            item = VideoItem(
                name=name,
                source=path,
                split=split,
                metadata={"dataset": "PolypDiag", "endofm_label": int(lab)},
            )
            if split == "val":
                item.metadata["note"] = "Endo-FM uses val.txt as its test set"
            item.video_labels.append(VideoLabelAnn(POLYPDIAG_CLASSES[lab], Provenance(str(lst), line=ln)))
            col.videos.append(item)
    if not col.videos:
        col.warn(base / "splits", "no split file lists any video")
    for p in sorted(vroot.rglob("*"), key=natural_key):
        if (
            p.is_file()
            and p.suffix.lower() in VIDEO_EXTS
            and not is_junk(str(p.relative_to(vroot)))
            and p.resolve() not in listed
        ):
            col.videos.append(
                VideoItem(name=str(p.relative_to(vroot).with_suffix("")), source=p, split="unassigned")
            )
            col.warn(p, "video not listed in any split; imported unlabelled")
    return col


# ----------------------------------------------------------------------------------------------------------------
# Per-case frame folders: SUN-SEG (Frame/<case>, GT/<case>), Endo-FM indexed/<case>/img_00001.jpg, any <case>/ folders
# ----------------------------------------------------------------------------------------------------------------
def find_case_folders(root: Path) -> tuple[Path, Path | None] | None:
    """(frames root, masks root or None) when ``root`` holds case folders of images."""
    for frame_name, gt_name in (
        ("Frame", "GT"),
        ("Frames", "GT"),
        ("Frame", "Mask"),
        ("images", "masks"),
        ("indexed", None),
    ):
        if (root / frame_name).is_dir():
            gt = root / gt_name if gt_name and (root / gt_name).is_dir() else None
            return root / frame_name, gt
    subs = [d for d in root.iterdir() if d.is_dir() and not is_junk(d.name)] if root.is_dir() else []
    if subs and all(list_images(d) for d in subs):
        return root, None
    return None


def find_nested_case_roots(root: Path, depth: int = 3) -> list[Path]:
    """Folders below ``root`` (at most ``depth`` levels) that hold ``Frame/`` (SUN-SEG's TrainDataset/,
    TestEasyDataset/Seen/, ...)."""
    out: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            for c in sorted(
                (p for p in d.iterdir() if p.is_dir() and not is_junk(p.name)),
                key=lambda p: natural_key(p.name),
            ):
                if (c / "Frame").is_dir():
                    out.append(c)
                else:
                    nxt.append(c)
        level = nxt
    return out


def read_case_folders(root: str | Path, *, label: str = "polyp", gt_root: Path | None = None) -> Collection:
    """Each case folder is one video (frames in natural order); masks in the parallel GT folder match by file stem.

    A dataset root with several ``*/Frame`` trees (SUN-SEG: ``TrainDataset``, ``TestEasyDataset/Seen`` ...) is read
    as all of them; video names are then prefixed with the tree's path, and the split is ``train``/``test`` when the
    path says so."""
    root = Path(root)
    found = find_case_folders(root)
    if found is None:
        nested = find_nested_case_roots(root) if root.is_dir() else []
        if not nested:
            raise InterchangeError(root, "no per-case frame folders found")
        col = Collection(layout="case-folders", root=root)
        for sub in nested:
            part = read_case_folders(sub, label=label)
            rel = sub.relative_to(root).as_posix()
            split = "train" if "train" in rel.lower() else "test" if "test" in rel.lower() else None
            for v in part.videos:
                v.name = f"{rel}/{v.name}"
                v.split = split
            col.extend(part)
        return col
    frames_root, gts = found
    gts = gt_root or gts
    col = Collection(layout="case-folders", root=root)
    for d in sorted(
        (p for p in frames_root.iterdir() if p.is_dir() and not is_junk(p.name)),
        key=lambda p: natural_key(p.name),
    ):
        frames = list_images(d)
        if not frames:
            continue
        item = VideoItem(name=d.name, frame_files=frames, num_frames=len(frames))
        item.height, item.width = raster.image_size(frames[0])
        if gts is not None and (gts / d.name).is_dir():
            mapping = match_by_stem(frames, list_images(gts / d.name))
            for k in sorted(mapping):
                ann = load_binary_mask(mapping[k], k, label, item.height, item.width, col.issues)
                if ann is not None:
                    item.masks.append(ann)
        col.videos.append(item)
    if gts is not None:
        names = {v.name for v in col.videos}
        for d in gts.iterdir():
            if d.is_dir() and not is_junk(d.name) and d.name not in names:
                raise InterchangeError(
                    d, "mask folder has no frame folder (labels for frames that do not exist)"
                )
    return col


# ----------------------------------------------------------------------------------------------------------------
# Pre-training lists
# ----------------------------------------------------------------------------------------------------------------
def read_pretrain_list(path: str | Path, *, root: str | Path | None = None, base: int = 1) -> Collection:
    """``train.csv`` (``path,-1``) -> one video per line; a clip list (``clip start count label``) -> one video per
    distinct clip path with a segment ``[start, start + count)`` per line (label ``clip`` when the label is -1).

    Paths resolve under ``root`` (default: the list's folder) and must stay inside it."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    col = Collection(layout="pretrain-list", root=root)
    first = next((ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()), "")
    if "," in first:
        for rel, prov in read_pretrain_csv(path):
            p = safe_join(root, rel, path, line=prov.line)
            if not p.exists():
                raise InterchangeError(path, f"{rel!r} does not exist under {root}", line=prov.line)
            col.videos.append(_video_for(p, rel))
        return col
    for clip in read_clip_list(path, base=base):
        p = safe_join(root, clip.clip, path, line=clip.provenance.line)
        if not p.exists():
            raise InterchangeError(
                path, f"{clip.clip!r} does not exist under {root}", line=clip.provenance.line
            )
        item = next((v for v in col.videos if v.metadata.get("list_path") == clip.clip), None)
        if item is None:
            item = _video_for(p, clip.clip)
            col.videos.append(item)
        n = item.frame_count
        if n is not None and clip.start + clip.count > n:
            raise InterchangeError(
                path,
                f"clip ends at frame {clip.start + clip.count} but {clip.clip!r} has {n} frames",
                line=clip.provenance.line,
            )
        label = "clip" if clip.label == "-1" else clip.label
        item.segments.append(SegmentAnn(clip.start, clip.start + clip.count, label, clip.provenance))
    return col


def _video_for(p: Path, rel: str) -> VideoItem:
    name = rel.replace("\\", "/").rstrip("/")
    if p.is_dir():
        frames = list_images(p)
        if not frames:
            raise InterchangeError(p, "folder holds no frame images")
        item = VideoItem(name=name, frame_files=frames, num_frames=len(frames))
        item.height, item.width = raster.image_size(frames[0])
    else:
        item = VideoItem(name=name, source=p)
    item.metadata["list_path"] = rel
    return item
