"""KUMC (PolypsSet): ``{train,val,test}2019/Image`` + ``Annotation`` (Pascal VOC XML), original or processed.

* Original release: ``<split>2019/Image/<video>/<name>.jpg`` with ``<split>2019/Annotation/<video>/<name>.xml``
  (``train2019`` also ships flat: ``Image/<name>.jpg``, which becomes one image sequence named ``train2019``).
  Frames are the images in natural file-name order; frames without XML are imported unlabelled.
* Processed (Endo-FM ``STFT/kumc.py``, reference §4.4): the same tree under ``processed/`` with frames renumbered
  ``1..N`` (1-based -> frame ``n - 1``) and ``ImageSets/{train,val,test}.txt`` lines ``<video> 0 <n> <N>``, which are
  checked against the frames.

Splits: ``train2019`` -> train, ``val2019`` -> val (Endo-FM evaluates on it), ``test2019`` -> test. Video names are
``<split>2019/<video>``. An XML without its image is malformed input.
"""

from __future__ import annotations

from pathlib import Path

from endoreview.interchange import raster
from endoreview.interchange.formats.voc import read_voc
from endoreview.interchange.model import BoxAnn, Collection, InterchangeError, VideoItem
from endoreview.interchange.util import is_junk, list_images, natural_key, parse_int

SPLITS = {"train2019": "train", "val2019": "val", "test2019": "test"}


def find_root(root: Path) -> Path | None:
    for d in (
        root,
        root / "processed",
        root / "PolypsSet",
        *(sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []),
    ):
        if d.is_dir() and any((d / s / "Image").is_dir() for s in SPLITS):
            return d
    return None


def read_kumc(root: str | Path) -> Collection:
    root = Path(root)
    base = find_root(root)
    if base is None:
        raise InterchangeError(root, "not a KUMC layout: no {train,val,test}2019/Image folders")
    col = Collection(layout="kumc", root=base)
    processed = (base / "ImageSets").is_dir()
    col.layout = "kumc-processed" if processed else "kumc-original"
    for split_dir, split in SPLITS.items():
        img_root = base / split_dir / "Image"
        ann_root = base / split_dir / "Annotation"
        if not img_root.is_dir():
            continue
        groups: list[tuple[str, Path]] = []
        if list_images(img_root):
            groups.append((split_dir, img_root))
        for d in sorted(
            (p for p in img_root.iterdir() if p.is_dir() and not is_junk(p.name)),
            key=lambda p: natural_key(p.name),
        ):
            groups.append((f"{split_dir}/{d.name}", d))
        for name, d in groups:
            frames = list_images(d)
            if not frames:
                continue
            rel = d.relative_to(img_root)
            item = VideoItem(
                name=name,
                frame_files=frames,
                num_frames=len(frames),
                split=split,
                metadata={"dataset": "KUMC"},
            )
            item.height, item.width = raster.image_size(frames[0])
            if processed:
                _check_processed_numbering(frames)
            by_stem = {f.stem: k for k, f in enumerate(frames)}
            xml_dir = ann_root / rel
            xmls = (
                sorted(xml_dir.glob("*.xml"), key=lambda p: natural_key(p.name)) if xml_dir.is_dir() else []
            )
            for x in xmls:
                if is_junk(x.name):
                    continue
                k = by_stem.get(x.stem)
                if k is None:
                    raise InterchangeError(
                        x,
                        f"annotation has no image '{x.stem}.*' in {d} (a label for a frame that does not exist)",
                    )
                info, objs, issues = read_voc(x)
                col.issues += issues
                h, w = (
                    raster.image_size(frames[k]) if info["width"] is None else (info["height"], info["width"])
                )
                if (h, w) != (item.height, item.width):
                    col.warn(
                        x, f"annotation size {w}x{h} differs from the frame's {item.width}x{item.height}"
                    )
                for label, box, prov, score in objs:
                    item.boxes.append(BoxAnn(k, label, box, prov, None, score))
            col.videos.append(item)
    if processed:
        _check_image_sets(base, col)
    if not col.videos:
        raise InterchangeError(base, "no frames found in the KUMC split folders")
    return col


def _check_processed_numbering(frames: list[Path]) -> None:
    for k, f in enumerate(frames, start=1):
        if not f.stem.isdigit() or int(f.stem) != k:
            raise InterchangeError(f, f"processed KUMC frames are numbered 1..N; expected '{k}.*'")


def _check_image_sets(base: Path, col: Collection) -> None:
    counts = {v.name: v.num_frames for v in col.videos}
    for split_dir, split in SPLITS.items():
        lst = base / "ImageSets" / f"{split}.txt"
        if not lst.is_file():
            continue
        for ln, line in enumerate(lst.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise InterchangeError(lst, f"expected '<video> 0 <n> <N>', got {len(parts)} fields", line=ln)
            video = f"{split_dir}/{parts[0]}"
            n = parse_int(parts[2], lst, line=ln, field="n")
            total = parse_int(parts[3], lst, line=ln, field="N")
            if video not in counts:
                raise InterchangeError(lst, f"video {parts[0]!r} has no folder in {split_dir}/Image", line=ln)
            if total != counts[video] or not 1 <= n <= total:
                raise InterchangeError(
                    lst, f"frame {n} of {total} does not match the {counts[video]} frames on disk", line=ln
                )
