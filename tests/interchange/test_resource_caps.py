"""Issue 19 row 7: inputs of a few hundred bytes to 1 MB cannot exhaust the machine; each is a named per-file error.

Each case runs in a child process under a 1.5 GiB address-space cap, so a regression fails (MemoryError, crash)
instead of taking the machine down."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from tests.interchange.hostile_child import CASES

CAP = 1536 << 20


def _cap():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


EXPECT = {
    "coco_nan_polygon": ("coco.json", "not finite"),
    "coco_huge_polygon": ("coco.json", "outside the 32x32 image"),
    "coco_huge_image": ("coco.json", "exceeds the import limit"),
    "cvat_huge_frame": ("ann.xml", "exceeds the import limit"),
    "cvat_stop_frame": ("ann.xml", "frames"),
    "png_mask_bomb": ("000000.png", "import limit"),
    "huge_frame_sequence": ("seq", "exceed"),
    "pil_bomb_in_batch": ("seq", "too large"),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_a_named_error_under_a_memory_cap(tmp_path, case):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    r = subprocess.run(
        [sys.executable, "-m", "tests.interchange.hostile_child", case, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_cap,
        timeout=300,
    )
    assert r.returncode == 0, (
        f"child died (rc {r.returncode}) under the {CAP >> 20} MiB cap: {r.stderr[-2000:]}"
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    what, reason = EXPECT[case]
    assert len(out["failed"]) == 1, out
    msg = out["failed"][0][1]
    assert what in msg and reason in msg, msg
    assert out["labels"] == 0
    if case in ("huge_frame_sequence", "pil_bomb_in_batch"):
        assert out["created"] == 1  # the rest of the batch was imported


def test_coco_image_size_is_checked_against_the_target_video_before_rasterising(store, tmp_path, monkeypatch):
    import json

    import numpy as np

    from core_model.video import write_video
    from endoreview.interchange import raster
    from endoreview.interchange.importer import Importer

    (tmp_path / "src").mkdir()
    write_video(tmp_path / "src" / "v.mp4", np.zeros((4, 32, 32, 3), np.uint8), fps=25.0)
    imp = Importer(store, work_dir=tmp_path / "w")
    vid = imp.import_videos([tmp_path / "src" / "v.mp4"]).videos_created[0]
    doc = {
        "images": [{"id": 1, "file_name": "a/0.jpg", "width": 6000, "height": 6000}],
        "categories": [{"id": 1, "name": "polyp"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 5999, 0, 5999, 5999]]}
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    rasterised = []
    real = raster.polygons_to_mask
    monkeypatch.setattr(raster, "polygons_to_mask", lambda *a, **k: rasterised.append(a[1:]) or real(*a, **k))
    rep = imp.import_annotations(tmp_path / "c.json", video_id=vid)
    assert (
        rep.failed and "c.json" in rep.failed[0][1] and "6000x6000 but the video is 32x32" in rep.failed[0][1]
    )
    assert rasterised == []  # refused before a 36-megapixel raster was made
