"""PNG/TIFF/JPEG mask folders: one image per frame.

Two kinds:

* **binary masks** as datasets ship them (CVC ``Ground Truth/``, Kvasir ``masks/``, SUN-SEG ``GT/``): binarised by the
  documented rule (:func:`raster.binarize`), resized per the size rule, one mask per frame with the given label;
  an all-background mask adds nothing;
* **label maps** (what EndoReview exports, recognised by ``labelmap.json`` beside them): pixel value k is class
  ``labelmap["classes"][k]``, 0 is background; one mask per class present.

Masks are matched to frames by file stem (``12.tif`` <-> ``12.png``); a mask whose stem matches no frame is a label
for a frame that does not exist, i.e. malformed input. Without frame files (a mask folder next to a video file), the
number in the name is the frame (``base`` 0 or 1, converted to 0-based here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from core_model.contract import rle_decode, rle_encode
from endoreview.interchange import raster
from endoreview.interchange.model import InterchangeError, Issue, MaskAnn, Provenance
from endoreview.interchange.util import frame_number, list_images

LABELMAP = "labelmap.json"


def match_by_stem(frame_files: list[Path], mask_files: list[Path], *, strict: bool = True) -> dict[int, Path]:
    """frame index -> mask file, matching stems. Unmatched masks are an error when ``strict``."""
    index = {f.stem: k for k, f in enumerate(frame_files)}
    num_index: dict[int, int] = {}
    for k, f in enumerate(frame_files):
        n = frame_number(f.name)
        if n is not None:
            num_index.setdefault(n, k)
    out: dict[int, Path] = {}
    for m in mask_files:
        k = index.get(m.stem)
        if k is None:
            for suffix in ("_mask", "_gt", "-mask", "_seg"):
                if m.stem.endswith(suffix) and m.stem[: -len(suffix)] in index:
                    k = index[m.stem[: -len(suffix)]]
                    break
        if k is None and m.stem.isdigit():
            k = num_index.get(int(m.stem))
        if k is None:
            if strict:
                raise InterchangeError(
                    m, "mask has no matching frame (a label for a frame that does not exist)"
                )
            continue
        if k in out:
            raise InterchangeError(m, f"second mask for the frame of {out[k].name}")
        out[k] = m
    return out


def match_by_number(mask_files: list[Path], base: int, num_frames: int | None) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for m in mask_files:
        n = frame_number(m.name)
        if n is None:
            raise InterchangeError(m, "mask file name carries no frame number")
        f = n - base
        if f < 0 or (num_frames is not None and f >= num_frames):
            raise InterchangeError(
                m,
                f"frame {f} (0-based, from '{m.name}' with {base}-based numbering) does not exist"
                + (f"; the video has {num_frames} frames" if num_frames is not None else ""),
            )
        if f in out:
            raise InterchangeError(m, f"second mask for frame {f} (first: {out[f].name})")
        out[f] = m
    return out


def load_binary_mask(
    path: Path,
    frame: int,
    label: str,
    height: int,
    width: int,
    issues: list[Issue],
    *,
    source_name: str | None = None,
) -> MaskAnn | None:
    img = raster.read_image(path)
    m = raster.binarize(img)
    name = source_name or str(path)
    m = raster.fit_to_frame(m, height, width, name, issues)
    if not m.any():
        return None
    return MaskAnn(frame, label, rle_encode(m), Provenance(name))


def read_labelmap(folder: Path) -> list[str] | None:
    p = folder / LABELMAP
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InterchangeError(p, f"not valid JSON ({e.msg})", line=e.lineno) from None
    classes = doc.get("classes") if isinstance(doc, dict) else None
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise InterchangeError(p, "'classes' must be a list of names (index 0 = background)", field="classes")
    return classes


def _read_indices(path: Path) -> np.ndarray:
    """Pixel values as stored: palette PNGs give their indices (OpenCV would expand them to colours)."""
    raster.check_image_header(path, path)  # a decompression bomb is refused here, naming the file
    try:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("P", "L", "I;16", "I"):
                return np.asarray(im)
    except Exception:
        pass
    return raster.read_image(path)


def load_labelmap_masks(
    path: Path, frame: int, classes: list[str], height: int, width: int, issues: list[Issue]
) -> list[MaskAnn]:
    img = _read_indices(path)
    if img.ndim == 3:
        raise InterchangeError(path, "a label-map mask must be single-channel (grey or palette PNG)")
    lm = raster.fit_to_frame(raster.label_map(img), height, width, path, issues)
    out = []
    for v in np.unique(lm):
        if v == 0:
            continue
        if v >= len(classes):
            raise InterchangeError(
                path, f"pixel value {v} has no class in {LABELMAP} ({len(classes)} entries)"
            )
        out.append(MaskAnn(frame, classes[v], rle_encode(lm == v), Provenance(str(path), field=f"value {v}")))
    return out


def read_mask_folder(
    mask_dir: str | os.PathLike,
    *,
    frame_files: list[Path] | None = None,
    num_frames: int | None = None,
    width: int | None = None,
    height: int | None = None,
    base: int = 0,
    label: str = "polyp",
    issues: list[Issue] | None = None,
) -> list[MaskAnn]:
    """All masks of one video from a folder (see the module docstring for the matching rules)."""
    mask_dir = Path(mask_dir)
    issues = issues if issues is not None else []
    files = list_images(mask_dir)
    classes = read_labelmap(mask_dir)
    if classes is not None:
        meta = json.loads((mask_dir / LABELMAP).read_text(encoding="utf-8"))
        base = int(meta.get("frame_index_base", base))
    if frame_files is not None:
        mapping = match_by_stem(frame_files, files)
    else:
        mapping = match_by_number(files, base, num_frames)
    out: list[MaskAnn] = []
    for frame in sorted(mapping):
        mfile = mapping[frame]
        if frame_files is not None:
            h, w = raster.image_size(frame_files[frame])
        else:
            if width is None or height is None:
                raise InterchangeError(mask_dir, "frame size unknown (give the video)")
            h, w = height, width
        if classes is not None:
            out += load_labelmap_masks(mfile, frame, classes, h, w, issues)
        else:
            m = load_binary_mask(mfile, frame, label, h, w, issues)
            if m is not None:
                out.append(m)
    return out


def label_png(
    masks: list[MaskAnn], height: int, width: int, class_index: dict[str, int]
) -> tuple[np.ndarray, set[str]]:
    """One frame's label map (uint8, or uint16 beyond 255 classes). Returns (image, dropped-notes)."""
    dropped: set[str] = set()
    dtype = np.uint8 if len(class_index) < 255 else np.uint16
    out = np.zeros((height, width), dtype)
    for m in masks:
        px = rle_decode(m.rle).astype(bool)
        if (out[px] != 0).any():
            dropped.add(
                "overlapping pixels of different masks (a label map holds one class per pixel; later wins)"
            )
        out[px] = class_index[m.label]
        if m.track_id is not None:
            dropped.add("track ids (a label map has no instances)")
        if m.score is not None:
            dropped.add("scores")
    return out, dropped


def write_labelmap(folder: Path, classes: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LABELMAP).write_text(
        json.dumps({"classes": classes, "frame_index_base": 0}, indent=1), encoding="utf-8"
    )
