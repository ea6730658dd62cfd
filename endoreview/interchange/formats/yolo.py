"""YOLO txt (Ultralytics layout): detection lines ``cls cx cy w h [conf]`` and segmentation lines
``cls x1 y1 x2 y2 ... [conf]``, coordinates normalised to [0, 1].

Dataset layout: ``images/**/<stem>.<ext>`` with ``labels/**/<stem>.txt`` at the same relative path (or images and
label files side by side in one folder). Class names come from ``data.yaml`` / ``dataset.yaml`` (``names``),
``classes.txt`` or ``obj.names``; without them the class index is used as the name (reported). Each image folder is
one sequence, frames in natural file-name order. A label file without its image is malformed input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core_model.contract import rle_decode, rle_encode
from endoreview.interchange import raster
from endoreview.interchange.model import BoxAnn, Collection, InterchangeError, Issue, MaskAnn, Provenance
from endoreview.interchange.util import (
    check_box,
    is_junk,
    list_images,
    natural_key,
    parse_float,
    parse_int,
    set_frame_names,
)

_NAME_FILES = ("data.yaml", "dataset.yaml", "classes.txt", "obj.names")


def read_names(root: Path) -> list[str] | None:
    for fn in _NAME_FILES:
        p = root / fn
        if not p.is_file():
            continue
        if p.suffix == ".yaml":
            import yaml

            try:
                doc = yaml.safe_load(p.read_text(encoding="utf-8"))
            except yaml.YAMLError as e:
                line = getattr(getattr(e, "problem_mark", None), "line", None)
                raise InterchangeError(
                    p, f"YAML does not parse ({e})", line=None if line is None else line + 1
                ) from None
            names = doc.get("names") if isinstance(doc, dict) else None
            if isinstance(names, dict):
                try:
                    return [str(names[k]) for k in sorted(names, key=int)]
                except (TypeError, ValueError):
                    raise InterchangeError(p, "'names' keys must be class indices", field="names") from None
            if isinstance(names, list):
                return [str(n) for n in names]
            raise InterchangeError(p, "missing 'names' (list or index -> name mapping)", field="names")
        return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return None


def read_frame_base(root: Path) -> int | None:
    """``frame_index_base`` from data.yaml (written by EndoReview: file names are frame numbers)."""
    p = root / "data.yaml"
    if not p.is_file():
        return None
    import yaml

    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    base = doc.get("frame_index_base") if isinstance(doc, dict) else None
    return base if base in (0, 1) else None


def parse_label_file(
    text: str, src: str, width: int, height: int, names: list[str] | None, frame: int, issues: list[Issue]
) -> tuple[list[BoxAnn], list[MaskAnn]]:
    boxes: list[BoxAnn] = []
    masks: list[MaskAnn] = []
    for ln, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        cls = parse_int(parts[0], src, line=ln, field="class", what="class index")
        if cls < 0 or (names is not None and cls >= len(names)):
            raise InterchangeError(
                src, f"class index {cls} is not defined ({len(names or [])} classes)", line=ln, field="class"
            )
        label = names[cls] if names is not None else str(cls)
        vals = [parse_float(p, src, line=ln, field="coordinates") for p in parts[1:]]
        prov = Provenance(src, line=ln)
        if len(vals) in (4, 5):
            cx, cy, bw, bh = vals[:4]
            score = vals[4] if len(vals) == 5 else None
            if bw < 0 or bh < 0:
                raise InterchangeError(src, "negative box width or height", line=ln)
            if not all(-0.05 <= v <= 1.05 for v in (cx, cy, bw, bh)):
                raise InterchangeError(src, f"coordinates {vals[:4]} are not normalised to [0, 1]", line=ln)
            box = (
                (cx - bw / 2) * width,
                (cy - bh / 2) * height,
                (cx + bw / 2) * width,
                (cy + bh / 2) * height,
            )
            boxes.append(BoxAnn(frame, label, check_box(box, width, height, prov, issues), prov, None, score))
        elif len(vals) >= 6:
            score = None
            if len(vals) % 2 == 1:
                score, vals = vals[-1], vals[:-1]
            if not all(-0.05 <= v <= 1.05 for v in vals):
                raise InterchangeError(src, "polygon coordinates are not normalised to [0, 1]", line=ln)
            pts = np.asarray(vals, dtype=float).reshape(-1, 2) * [width, height]
            m = raster.polygons_to_mask([pts.reshape(-1).tolist()], height, width)
            if not m.any():
                issues.append(Issue(src, "polygon covers no pixel; skipped", line=ln))
                continue
            masks.append(MaskAnn(frame, label, rle_encode(m), prov, None, score))
        else:
            raise InterchangeError(
                src,
                f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', got {len(parts)} values",
                line=ln,
            )
    return boxes, masks


def read_yolo(root: str | os.PathLike) -> Collection:
    root = Path(root)
    names = read_names(root)
    col = Collection(layout="yolo", root=root)
    if names is None:
        col.warn(root, "no data.yaml/classes.txt: class indices are used as names")
    img_root = root / "images" if (root / "images").is_dir() else root
    lbl_root = root / "labels" if (root / "labels").is_dir() else root
    folders: dict[Path, list[Path]] = {}
    for d in sorted({p.parent for p in img_root.rglob("*") if p.is_file()}, key=natural_key):
        imgs = list_images(d)
        if imgs and not is_junk(str(d.relative_to(root))):
            folders[d] = imgs
    index: dict[Path, tuple] = {}
    for d, imgs in folders.items():
        rel = d.relative_to(img_root)
        name = "/".join(rel.parts) if rel.parts else root.name
        item = col.get_or_add(name, frame_files=imgs, num_frames=len(imgs))
        item.height, item.width = raster.image_size(imgs[0])
        for k, im in enumerate(imgs):
            index[(lbl_root / rel / im.stem).with_suffix(".txt").resolve()] = (item, k, im)
    for txt in sorted(lbl_root.rglob("*.txt"), key=natural_key):
        if (
            txt.name in _NAME_FILES
            or is_junk(str(txt.relative_to(root)))
            or txt.parent == root
            and txt.name.startswith("classes")
        ):
            continue
        key = txt.resolve()
        if key not in index:
            raise InterchangeError(
                txt, "label file has no matching image (a label for a frame that does not exist)"
            )
        item, frame, im = index[key]
        h, w = raster.image_size(im)
        boxes, masks = parse_label_file(
            txt.read_text(encoding="utf-8", errors="replace"), str(txt), w, h, names, frame, col.issues
        )
        item.boxes += boxes
        item.masks += masks
    base = read_frame_base(root)
    for item in col.videos:
        set_frame_names(item, [f.name for f in item.frame_files])
        if base is not None:  # EndoReview exports name files by frame number and say so in data.yaml
            item.metadata["frame_name_base"] = base
    return col


def yolo_label_text(
    boxes: list[BoxAnn], masks: list[MaskAnn], width: int, height: int, class_index: dict[str, int], mode: str
) -> tuple[str, set[str]]:
    """One frame's label file. ``mode`` is ``"det"`` (boxes) or ``"seg"`` (mask outlines as polygons)."""
    dropped: set[str] = set()
    lines = []
    if mode == "det":
        for b in boxes:
            x0, y0, x1, y1 = b.bbox
            vals = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
            if b.score is not None:
                vals.append(b.score)
            lines.append(f"{class_index[b.label]} " + " ".join(f"{v:.6f}" for v in vals))
            if b.track_id is not None:
                dropped.add("track ids")
        if masks:
            dropped.add("masks (YOLO detection carries boxes only; use the segmentation export)")
    else:
        for m in masks:
            polys, holes = raster.mask_to_polygons(rle_decode(m.rle))
            if holes:
                dropped.add("holes in masks (polygons cannot express them)")
            if len(polys) > 1:
                dropped.add("grouping of multi-part masks (each part is its own line)")
            for p in polys:
                pts = np.asarray(p, dtype=float).reshape(-1, 2) / [width, height]
                vals = pts.reshape(-1).tolist()
                if m.score is not None:
                    vals.append(m.score)
                lines.append(f"{class_index[m.label]} " + " ".join(f"{v:.6f}" for v in vals))
            if m.track_id is not None:
                dropped.add("track ids")
        if boxes:
            dropped.add("boxes (YOLO segmentation carries polygons only; use the detection export)")
    return "".join(ln + "\n" for ln in lines), dropped
