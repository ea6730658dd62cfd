"""CVC-ClinicDB / CVC-12k: ``Original/{i}`` frames and ``Ground Truth/{i}`` masks, ``i`` = 1..612 (1-based).

Accepted: ``.tif`` (the original release) and ``.png`` (the common re-distribution), at the root or one or two
folders down (``CVC-ClinicDB/``, ``PNG/``, ``TIF/``), also inside the distributed zip. Frames are grouped into the
sequences Endo-FM's TransUNet split lists name (reference §4.3: ``name start length``, start 1-based); frames that
no listed sequence covers become *unassigned runs* (one video per maximal run of consecutive uncovered frames), never
dropped. Sequence names are ``cvc_<start>_<length>`` (1-based start, as the lists write it); unassigned runs are
``cvc_unassigned_<first>_<last>`` (1-based, inclusive). Frame ``k`` of a sequence is global frame ``start + k``.
"""

from __future__ import annotations

from pathlib import Path

from endoreview.interchange import raster
from endoreview.interchange.formats.maskdir import load_binary_mask
from endoreview.interchange.model import Collection, InterchangeError, VideoItem
from endoreview.interchange.util import frame_number, list_images

# (start, length), 1-based global frame numbers, from TransUNet/dataset.py (reference §4.3)
TRAIN_SEQUENCES = [
    (104, 23), (529, 18), (448, 19), (26, 25), (343, 21), (178, 22), (429, 19), (200, 6), (127, 25), (253, 25),
    (364, 20), (592, 21), (228, 25), (68, 11), (467, 12), (206, 22), (79, 25), (479, 25), (51, 17), (572, 20),
]  # fmt: skip
TEST_SEQUENCES = [
    (51, 17),
    (318, 25),
    (429, 19),
    (1, 25),
    (178, 22),
    (253, 25),
    (343, 21),
    (68, 11),
    (200, 6),
]
MASK_DIRS = ("Ground Truth", "GroundTruth", "Ground_Truth", "GT", "masks")


def find_root(root: Path) -> Path | None:
    """The folder holding ``Original/`` and a ground-truth folder, searching two levels down."""
    cands = [root] + [d for d in sorted(root.iterdir()) if d.is_dir()] if root.is_dir() else []
    for d in list(cands):
        if d is not root:
            cands += [e for e in sorted(d.iterdir()) if e.is_dir()]
    found = [d for d in cands if (d / "Original").is_dir() and any((d / m).is_dir() for m in MASK_DIRS)]
    if not found:
        return None
    # prefer the TIF copy when both PNG/ and TIF/ ship (the original release format)
    tif = [d for d in found if any(p.suffix.lower() in (".tif", ".tiff") for p in (d / "Original").iterdir())]
    return (tif or found)[0]


def read_cvc(
    root: str | Path, *, sequences: list[tuple[int, int]] | None = None, label: str = "polyp"
) -> Collection:
    root = Path(root)
    base = find_root(root)
    if base is None:
        raise InterchangeError(
            root, "not a CVC-ClinicDB layout: no 'Original/' with 'Ground Truth/' beside it"
        )
    orig = base / "Original"
    gt_dir = next(base / m for m in MASK_DIRS if (base / m).is_dir())
    col = Collection(layout="cvc-clinicdb", root=base)
    frames: dict[int, Path] = {}
    for f in list_images(orig):
        n = frame_number(f.name)
        if n is None or not f.stem.isdigit():
            col.warn(f, "frame file name is not a frame number; skipped")
            continue
        if n in frames:
            raise InterchangeError(f, f"frame number {n} appears twice ({frames[n].name})")
        frames[n] = f
    if not frames:
        raise InterchangeError(orig, "no frames found")
    if min(frames) < 1:
        raise InterchangeError(frames[min(frames)], "CVC frames are numbered from 1")
    masks: dict[int, Path] = {}
    for m in list_images(gt_dir):
        n = frame_number(m.name)
        if n is None or n not in frames:
            raise InterchangeError(
                m, "mask has no matching frame in Original/ (a label for a frame that does not exist)"
            )
        masks[n] = m
    listed = sequences
    if listed is None:
        seen: list[tuple[int, int]] = []
        for s in TRAIN_SEQUENCES + TEST_SEQUENCES:
            if s not in seen:
                seen.append(s)
        listed = sorted(seen)
    split_of = {}
    for s in listed:
        in_train, in_test = s in TRAIN_SEQUENCES, s in TEST_SEQUENCES
        split_of[s] = "train" if in_train else "test" if in_test else None
    covered: set[int] = set()
    for start, length in listed:
        rng = range(start, start + length)
        missing = [n for n in rng if n not in frames]
        if missing:
            raise InterchangeError(
                orig,
                f"sequence {start}+{length} (1-based) lacks frame(s) {missing[:5]}{'...' if len(missing) > 5 else ''}",
            )
        item = VideoItem(
            name=f"cvc_{start}_{length}",
            frame_files=[frames[n] for n in rng],
            split=split_of[(start, length)],
            metadata={
                "dataset": "CVC-ClinicDB",
                "first_frame_1based": start,
                "endofm_splits": [
                    s
                    for s, lst in (("train", TRAIN_SEQUENCES), ("test", TEST_SEQUENCES))
                    if (start, length) in lst
                ],
            },
        )
        covered.update(rng)
        col.videos.append(item)
    runs: list[list[int]] = []
    for n in sorted(n for n in frames if n not in covered):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    for run in runs:
        col.videos.append(
            VideoItem(
                name=f"cvc_unassigned_{run[0]}_{run[-1]}",
                frame_files=[frames[k] for k in run],
                split="unassigned",
                metadata={"dataset": "CVC-ClinicDB", "first_frame_1based": run[0], "endofm_splits": []},
            )
        )
    for item in col.videos:
        first = item.metadata["first_frame_1based"]
        item.num_frames = len(item.frame_files)
        item.height, item.width = raster.image_size(item.frame_files[0])
        for k in range(item.num_frames):
            mfile = masks.get(first + k)
            if mfile is None:
                continue
            ann = load_binary_mask(mfile, k, label, item.height, item.width, col.issues)
            if ann is not None:
                ann.provenance = type(ann.provenance)(str(mfile), field=f"frame {first + k} (1-based)")
                item.masks.append(ann)
    return col
