"""COCO JSON: boxes, polygons, RLE masks (compressed and uncompressed), optional video grouping.

Reading. ``images`` map to video frames in one of two ways:

* COCO-VID style: an image with ``video_id`` and ``frame_id`` (0-based; ``frame_index`` is accepted too) belongs to
  that video at that frame; video names come from ``videos[].name`` (or ``file_name``).
* otherwise the images of each directory in ``file_name`` form one sequence, in natural order of the file names
  (frame i is the i-th listed image of that directory).

Each annotation becomes a mask (when it has a ``segmentation``) and a box (always, unless the file was written by
EndoReview and says ``"endoreview_box": false``). ``score`` and ``track_id`` (or ``instance_id``) are kept.
EndoReview writes each annotation's ``review_state`` (suggested, accepted, edited, manual) next to its ``score``.

Writing produces COCO-VID style files with RLE masks (``str`` counts) and lists what the format cannot carry.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from core_model.contract import RLEError, rle_decode, rle_encode, rle_normalise
from endoreview.interchange import limits, raster
from endoreview.interchange.model import (
    BoxAnn,
    Collection,
    InterchangeError,
    MaskAnn,
    Provenance,
    VideoItem,
)
from endoreview.interchange.util import check_box, natural_key, safe_join, set_frame_names


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def read_coco(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    source_name: str | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Collection:
    """Parse a COCO JSON file. ``image_root`` is where ``file_name`` paths resolve (default: the JSON's folder).
    ``frame_size`` (width, height of the target video, when known): every image must declare it, checked before
    any polygon is rasterised."""
    path = Path(path)
    src = source_name or str(path)
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise InterchangeError(src, f"not valid JSON ({e.msg})", line=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InterchangeError(src, f"cannot be read ({e})") from None
    root = Path(image_root) if image_root is not None else path.parent
    return parse_coco(data, src, root, frame_size=frame_size)


def _key(v: Any, src: str, where: str) -> Any:
    """Ids must be integers or strings (they are looked up)."""
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise InterchangeError(src, f"id must be an integer or a string, got {v!r:.40}", field=where)
    return v


def _req(d: Any, key: str, where: str, src: str) -> Any:
    if not isinstance(d, dict):
        raise InterchangeError(src, "must be an object", field=where)
    if key not in d:
        raise InterchangeError(src, f"missing field '{key}'", field=where)
    return d[key]


def parse_coco(
    data: Any, src: str, image_root: Path, *, frame_size: tuple[int, int] | None = None
) -> Collection:
    col = Collection(layout="coco", root=image_root)
    if not isinstance(data, dict):
        raise InterchangeError(src, "top level must be an object with 'images', 'annotations', 'categories'")
    images = _req(data, "images", "top level", src)
    anns = data.get("annotations", [])
    cats = _req(data, "categories", "top level", src)
    if not isinstance(images, list) or not isinstance(anns, list) or not isinstance(cats, list):
        raise InterchangeError(src, "'images', 'annotations' and 'categories' must be lists")
    cat_names: dict[int, str] = {}
    for i, c in enumerate(cats):
        cid = _key(_req(c, "id", f"categories[{i}]", src), src, f"categories[{i}].id")
        name = _req(c, "name", f"categories[{i}]", src)
        if not isinstance(name, str) or not name:
            raise InterchangeError(
                src, "category name must be a non-empty string", field=f"categories[{i}].name"
            )
        cat_names[cid] = name
    video_names: dict[Any, str] = {}
    for i, v in enumerate(data.get("videos", []) or []):
        vid = _key(_req(v, "id", f"videos[{i}]", src), src, f"videos[{i}].id")
        video_names[vid] = str(v.get("name") or v.get("file_name") or f"video_{vid}")

    # ---- images -> (video name, frame index)
    frame_of: dict[Any, tuple[VideoItem, int, int, int]] = {}
    by_dir: dict[str, list[tuple[str, dict, int]]] = defaultdict(list)
    for i, im in enumerate(images):
        w = f"images[{i}]"
        iid = _key(_req(im, "id", w, src), src, f"{w}.id")
        fname = _req(im, "file_name", w, src)
        width = _req(im, "width", w, src)
        height = _req(im, "height", w, src)
        if not isinstance(fname, str) or not fname:
            raise InterchangeError(src, "must be a non-empty string", field=f"{w}.file_name")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise InterchangeError(src, "width and height must be positive integers", field=w)
        limits.check_image_size(src, width, height, field=w)  # before anything is rasterised at that size
        if frame_size is not None and (width, height) != tuple(frame_size):
            raise InterchangeError(
                src, f"image is {width}x{height} but the video is {frame_size[0]}x{frame_size[1]}", field=w
            )
        if iid in frame_of:
            raise InterchangeError(src, f"duplicate image id {iid!r}", field=f"{w}.id")
        safe_join(image_root, fname, src, field=f"{w}.file_name")
        vid = im.get("video_id")
        if vid is not None:
            _key(vid, src, f"{w}.video_id")
        fidx = im.get("frame_index", im.get("frame_id"))
        if vid is not None and fidx is not None:
            if not isinstance(fidx, int) or isinstance(fidx, bool) or fidx < 0:
                raise InterchangeError(
                    src, f"frame index must be an integer >= 0, got {fidx!r}", field=f"{w}.frame_id"
                )
            name = video_names.get(vid, f"video_{vid}")
            item = col.get_or_add(name, width=width, height=height)
            frame_of[iid] = (item, fidx, width, height)
        else:
            by_dir[str(PurePosixPath(fname.replace("\\", "/")).parent)].append((fname, im, i))
            frame_of[iid] = None  # type: ignore[assignment]
    for d, entries in by_dir.items():
        entries.sort(key=lambda e: natural_key(e[0]))
        name = PurePosixPath(d).name if d not in ("", ".") else Path(src).stem
        item = col.get_or_add(name)
        item.frame_files = [
            safe_join(image_root, e[0], src, field=f"images[{e[2]}].file_name") for e in entries
        ]
        item.num_frames = len(entries)
        set_frame_names(item, [PurePosixPath(e[0].replace("\\", "/")).name for e in entries])
        for k, (_fname, im, _i) in enumerate(entries):
            item.width, item.height = im["width"], im["height"]
            frame_of[im["id"]] = (item, k, im["width"], im["height"])
    for item in col.videos:
        if item.frame_files is None:
            frames = [f for (it, f, _w, _h) in frame_of.values() if it is item]
            item.num_frames = max(frames) + 1 if frames else None

    # ---- annotations
    for i, a in enumerate(anns):
        w = f"annotations[{i}]"
        iid = _key(_req(a, "image_id", w, src), src, f"{w}.image_id")
        cid = _key(_req(a, "category_id", w, src), src, f"{w}.category_id")
        if iid not in frame_of:
            raise InterchangeError(src, f"image_id {iid!r} is not in 'images'", field=f"{w}.image_id")
        if cid not in cat_names:
            raise InterchangeError(
                src, f"category_id {cid!r} is not in 'categories'", field=f"{w}.category_id"
            )
        item, frame, width, height = frame_of[iid]
        label = cat_names[cid]
        prov = Provenance(src, field=w)
        score = a.get("score")
        if score is not None and not _num(score):
            raise InterchangeError(src, "score must be a number", field=f"{w}.score")
        track = a.get("track_id", a.get("instance_id"))
        if track is not None and (not isinstance(track, int) or isinstance(track, bool)):
            raise InterchangeError(src, "track_id must be an integer", field=f"{w}.track_id")
        seg = a.get("segmentation")
        has_mask = bool(seg)
        if has_mask:
            rle = _segmentation_to_rle(seg, height, width, src, f"{w}.segmentation")
            item.masks.append(MaskAnn(frame, label, rle, prov, track, score))
        want_box = a.get("endoreview_box", True) if has_mask else True
        if want_box:
            bb = _req(a, "bbox", w, src) if not has_mask else a.get("bbox")
            if bb is None:
                continue
            if not (isinstance(bb, list) and len(bb) == 4 and all(_num(v) for v in bb)):
                raise InterchangeError(
                    src, f"bbox must be [x, y, width, height] numbers, got {bb!r}", field=f"{w}.bbox"
                )
            x, y, bw, bh = (float(v) for v in bb)
            if bw <= 0 or bh <= 0:
                if has_mask:
                    continue
                raise InterchangeError(src, f"bbox {bb} has no area", field=f"{w}.bbox")
            box = check_box(
                (x, y, x + bw, y + bh), width, height, Provenance(src, field=f"{w}.bbox"), col.issues
            )
            item.boxes.append(BoxAnn(frame, label, box, prov, track, score))
    return col


def _segmentation_to_rle(seg: Any, h: int, w: int, src: str, where: str) -> dict[str, Any]:
    if isinstance(seg, list):
        polys = []
        for k, p in enumerate(seg):
            if not (isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_num(v) for v in p)):
                raise InterchangeError(
                    src, "each polygon must be a flat list of >= 3 x,y pairs", field=f"{where}[{k}]"
                )
            polys.append(limits.check_polygon(src, p, w, h, field=f"{where}[{k}]"))
        return rle_encode(raster.polygons_to_mask(polys, h, w))
    if isinstance(seg, dict):
        size = seg.get("size")
        counts = seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size)):
            raise InterchangeError(src, "RLE needs 'size': [height, width]", field=f"{where}.size")
        if list(size) != [h, w]:
            raise InterchangeError(
                src, f"mask size {size} differs from its image's [{h}, {w}]", field=f"{where}.size"
            )
        if isinstance(counts, (list, str)):
            try:
                return rle_normalise({"size": size, "counts": counts})
            except RLEError as e:
                raise InterchangeError(src, f"RLE counts {e.reason}", field=f"{where}.{e.field}") from None
        raise InterchangeError(src, "RLE 'counts' must be a string or a list", field=f"{where}.counts")
    raise InterchangeError(src, "segmentation must be a polygon list or an RLE object", field=where)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------
def coco_document(col: Collection, *, frame_name=None) -> tuple[dict[str, Any], list[str]]:
    """Build a COCO-VID document from a collection. Returns (document, dropped-notes).

    ``frame_name(video, frame) -> str`` gives each image's ``file_name`` (default ``<video>/<frame:06d>.jpg``).
    A mask and a box with the same (frame, label, track id) become one annotation.
    """
    frame_name = frame_name or (lambda v, f: f"{v.name}/{f:06d}.jpg")
    labels = sorted({a.label for v in col.videos for a in (*v.masks, *v.boxes)})
    cat_id = {n: i + 1 for i, n in enumerate(labels)}
    doc: dict[str, Any] = {
        "info": {"description": "exported by EndoReview", "frame_index_base": 0},
        "videos": [],
        "images": [],
        "annotations": [],
        "categories": [{"id": cat_id[n], "name": n, "supercategory": "lesion"} for n in labels],
    }
    dropped: set[str] = set()
    ids = [0, 0]  # last image id, last annotation id
    for vi, v in enumerate(col.videos, start=1):
        doc["videos"].append({"id": vi, "name": v.name})
        images, anns = coco_frames(v, vi, cat_id, frame_name, ids, dropped)
        doc["images"] += images
        doc["annotations"] += anns
    return doc, sorted(dropped)


def coco_frames(
    v: VideoItem,
    vi: int,
    cat_id: dict[str, int],
    frame_name,
    ids: list[int],
    dropped: set[str],
    normalised: bool = False,
    as_text: bool = False,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The COCO images and annotations of one video item (or of a range of its frames: the exporter streams a long
    video in parts). ``ids`` = [last image id, last annotation id] is advanced; a label missing from ``cat_id`` gets
    the next category id. ``normalised``: the masks' RLE is already the codec's normal form (as the store keeps
    it), so it is written as it is instead of being re-encoded. ``as_text``: each annotation as its JSON text
    (what ``json.dumps`` writes; a box's text is formatted directly: a procedure has a million)."""
    images: list[dict[str, Any]] = []
    annotations: list[Any] = []
    states: dict[Any, str] = {}

    def cat(name: str) -> int:
        if name not in cat_id:
            cat_id[name] = max(cat_id.values(), default=0) + 1
        return cat_id[name]

    if v.segments or v.video_labels:
        dropped.add("segments and video labels (COCO has no temporal labels; use the CSV export)")
    mframes: dict[int, list[MaskAnn]] = defaultdict(list)
    bframes: dict[int, list[BoxAnn]] = defaultdict(list)
    for m in v.masks:
        mframes[m.frame].append(m)
    for b in v.boxes:
        bframes[b.frame].append(b)
    for f in sorted(mframes.keys() | bframes.keys()):
        ids[0] += 1
        image_id = ids[0]
        images.append(
            {
                "id": image_id,
                "file_name": frame_name(v, f),
                "width": v.width,
                "height": v.height,
                "video_id": vi,
                "frame_id": f,
            }
        )
        boxes_by_key: dict[tuple, list[BoxAnn]] = defaultdict(list)
        for a in bframes.get(f, ()):
            boxes_by_key[(a.label, a.track_id)].append(a)
        for a in mframes.get(f, ()):
            ids[1] += 1
            # as recorded with the mask, or from its runs: a 1080p mask is never decoded here
            mb, area = a.extent if a.extent is not None else raster.rle_bbox_area(a.rle)
            # one annotation carries a mask and its box only when both have the same review state
            cands = [b for b in boxes_by_key.get((a.label, a.track_id), []) if b.state == a.state]
            if (
                a.track_id is None
            ):  # untracked: only the box that is exactly this mask's box is the same object
                cands = [b for b in cands if mb is not None and tuple(b.bbox) == mb]
            box = cands[0] if cands else None
            if box is not None:
                boxes_by_key[(a.label, a.track_id)].remove(box)
            x0, y0, x1, y1 = box.bbox if box else (mb or (0.0, 0.0, 0.0, 0.0))
            ann = {
                "id": ids[1],
                "image_id": image_id,
                "category_id": cat(a.label),
                "segmentation": (
                    {"size": list(a.rle["size"]), "counts": a.rle["counts"]}
                    if normalised
                    else rle_normalise(a.rle)
                ),
                "area": area,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "endoreview_box": box is not None,
            }
            ann = _with_label_fields(ann, a)
            annotations.append(json.dumps(ann) if as_text else ann)
        for rest in boxes_by_key.values():
            for b in rest:
                ids[1] += 1
                x0, y0, x1, y1 = b.bbox
                score = b.score
                if (
                    as_text
                    and type(x0) is float
                    and type(y0) is float
                    and type(x1) is float
                    and type(y1) is float
                    and (score is None or type(score) is float)
                ):
                    # json.dumps writes a float as its repr (a box's values are finite: the store checks them)
                    text = (
                        f'{{"id": {ids[1]}, "image_id": {image_id}, "category_id": {cat(b.label)}, '
                        f'"bbox": [{x0!r}, {y0!r}, {x1 - x0!r}, {y1 - y0!r}], '
                        f'"area": {(x1 - x0) * (y1 - y0)!r}, "iscrowd": 0'
                    )
                    if b.track_id is not None:
                        text += f', "track_id": {int(b.track_id)}'
                    if score is not None:
                        text += f', "score": {score!r}'
                    if b.state is not None:
                        st = states.get(b.state)
                        if st is None:
                            st = states[b.state] = json.dumps(b.state)
                        text += f', "review_state": {st}'
                    annotations.append(text + "}")
                    continue
                ann = {
                    "id": ids[1],
                    "image_id": image_id,
                    "category_id": cat(b.label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0,
                }
                ann = _with_label_fields(ann, b)
                annotations.append(json.dumps(ann) if as_text else ann)
    return images, annotations


def coco_polygon_document(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Convert a COCO document's RLE masks to polygons (for tools that read only polygons). Holes are dropped."""
    dropped: set[str] = set()
    out = json.loads(json.dumps(doc))
    for a in out["annotations"]:
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            polys, holes = raster.mask_to_polygons(rle_decode(seg))
            if holes:
                dropped.add("holes in masks (polygons cannot express them)")
            a["segmentation"] = polys
    return out, sorted(dropped)


def write_coco(col: Collection, path: str | os.PathLike, **kw: Any) -> list[str]:
    doc, dropped = coco_document(col, **kw)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return dropped


def _with_label_fields(ann: dict, label) -> dict:
    """``ann`` with the label's optional track, score and review state (absent ones are left out)."""
    if label.track_id is not None:
        ann["track_id"] = label.track_id
    if label.score is not None:
        ann["score"] = label.score
    if label.state is not None:
        ann["review_state"] = label.state
    return ann
