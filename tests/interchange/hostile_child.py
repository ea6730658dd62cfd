"""Hostile inputs of a few hundred bytes to a few hundred KB, each imported in a child under an address-space cap.

python -m tests.interchange.hostile_child CASE WORK_DIR  -> prints one JSON line {"failed": [[what, reason], ...], ...}
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

CASES = [
    "coco_nan_polygon",
    "coco_huge_polygon",
    "coco_huge_image",
    "cvat_huge_frame",
    "cvat_stop_frame",
    "png_mask_bomb",
    "huge_frame_sequence",
    "pil_bomb_in_batch",
]


def bomb_png(path: Path, width: int, height: int, value: int = 0) -> Path:
    """A valid uniform greyscale PNG of ``width`` x ``height`` written row by row (a few hundred KB on disk)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    comp = zlib.compressobj(9)
    row = b"\0" + bytes([value]) * width
    idat = bytearray()
    for _ in range(height):
        idat += comp.compress(row)
    idat += comp.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", bytes(idat))
        + chunk(b"IEND", b"")
    )
    return path


def _video(store, work: Path, name: str = "v", n: int = 4, size: int = 32):
    import numpy as np

    from core_model.video import write_video
    from endoreview.interchange.importer import Importer

    p = work / "src" / f"{name}.mp4"
    p.parent.mkdir(parents=True, exist_ok=True)
    write_video(p, np.zeros((n, size, size, 3), np.uint8), fps=25.0)
    Importer(store, work_dir=work / "imports").import_videos([p])
    return store.list_videos()[-1]


def _coco(work: Path, w: int, h: int, seg) -> Path:
    doc = {
        "images": [
            {"id": 1, "file_name": "v/000000.jpg", "width": w, "height": h, "frame_id": 0, "video_id": 1}
        ],
        "videos": [{"id": 1, "name": "v"}],
        "categories": [{"id": 1, "name": "polyp"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg, "bbox": [1, 1, 2, 2]}
        ],
    }
    p = work / "coco.json"
    p.write_text(json.dumps(doc))  # NaN is written as the bare token NaN, which JSON readers accept
    return p


def _cvat(work: Path, w: int, h: int, stop: int, shape: str) -> Path:
    p = work / "ann.xml"
    p.write_text(
        f"<annotations><meta><task><name>v</name><size>{stop + 1}</size><start_frame>0</start_frame>"
        f"<stop_frame>{stop}</stop_frame><original_size><width>{w}</width><height>{h}</height></original_size>"
        f"</task></meta><track id='0' label='polyp'>{shape}</track></annotations>"
    )
    return p


def run(case: str, work: Path) -> dict:
    from endoreview.interchange.importer import Importer
    from endoreview.store import Store

    work.mkdir(parents=True, exist_ok=True)
    store = Store.open(str(work / "db.sqlite3"), reviewer="t")
    imp = Importer(store, work_dir=work / "imports")
    if case in ("coco_nan_polygon", "coco_huge_polygon", "coco_huge_image"):
        _video(store, work)
        if case == "coco_nan_polygon":
            p = _coco(work, 32, 32, [[1, 1, float("nan"), 5, 9, 9]])
        elif case == "coco_huge_polygon":
            p = _coco(work, 32, 32, [[0, 0, 1e30, 0, 1e30, 1e30, 0, 1e30]])
        else:
            p = _coco(work, 20000, 20000, [[0, 0, 19999, 0, 19999, 19999]])
        rep = imp.import_annotations(p)
    elif case == "cvat_huge_frame":
        _video(store, work)
        shape = "<mask frame='0' keyframe='1' outside='0' rle='1, 899999999' left='0' top='0' width='30000' height='30000'/>"
        rep = imp.import_annotations(_cvat(work, 30000, 30000, 3, shape))
    elif case == "cvat_stop_frame":
        _video(store, work)
        shape = "<box frame='0' keyframe='1' outside='0' xtl='1' ytl='1' xbr='5' ybr='5'/>"
        p = _cvat(work, 32, 32, 3_000_000, shape)
        assert p.stat().st_size < 600
        rep = imp.import_annotations(p)
    elif case == "png_mask_bomb":
        v = _video(store, work)
        bomb_png(work / "masks" / "v" / "000000.png", 16384, 16384)
        (work / "masks" / "v" / "labelmap.json").write_text(json.dumps({"classes": ["background", "polyp"]}))
        rep = imp.import_annotations(work / "masks" / "v", layout="mask-folder", video_id=v.id, base=0)
    elif case in ("huge_frame_sequence", "pil_bomb_in_batch"):
        side = 12000 if case == "huge_frame_sequence" else 16384
        for k in range(2):
            bomb_png(work / "batch" / "seq" / f"{k:03d}.png", side, side, value=90 + k)  # frames, not masks
        import numpy as np

        from core_model.video import write_video

        write_video(work / "batch" / "ok.mp4", np.zeros((4, 32, 32, 3), np.uint8), fps=25.0)
        rep = imp.import_videos([work / "batch"])
    else:
        raise SystemExit(f"unknown case {case}")
    return {
        "failed": rep.failed,
        "created": len(rep.videos_created),
        "labels": sum(len(store.labels_for_video(v.id)) for v in store.list_videos()),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]))), flush=True)
