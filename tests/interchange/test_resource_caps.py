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
