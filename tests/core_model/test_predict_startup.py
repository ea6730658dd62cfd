"""What ``endofm predict`` pays before and around the model: no torchvision (its package import pulls in
``torch._dynamo``, ~1.5 s of a 10-second clip's budget on the 2-core machine) and no page-faulting of freed
activations on every batch (glibc returns each few-MB activation to the kernel when it is freed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from core_model.video.synthetic import write_texture_video

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "demo_model")

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    from core_model.inference.cli import main
    rc = main([sys.argv[2], "--model", sys.argv[1], "--out", sys.argv[3], "--threads", "1"])
    import torch
    from core_model import ops
    from core_model.inference import Predictor
    pred = Predictor(sys.argv[1], device="cpu")
    x = torch.zeros(4, 3, 2, 112, 112)
    with torch.inference_mode():
        pred.model(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            pred.model(x)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    print(json.dumps({"rc": rc, "modules": sorted(m for m in ("torchvision", "torch._dynamo", "scipy", "timm")
                      if m in sys.modules), "compiled_nms": getattr(ops, "_tv_nms", lambda: None)() is not None, "faults_per_batch": faults}))
    """
)


def test_predict_imports_no_torchvision_and_does_not_refault_its_activations(tmp_path):
    video = write_texture_video(tmp_path / "v.mp4", 8, size=(90, 160), gop=8)
    out = tmp_path / "p.jsonl"
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, DEMO, str(video), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0
    frames = [json.loads(line) for line in out.read_text().splitlines() if '"event":"frame"' in line]
    assert len(frames) == 8 and any(f["boxes"] for f in frames)  # detection (NMS) really ran
    assert got["modules"] == [], got
    try:
        import importlib.util

        has_tv = importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        has_tv = False
    assert got["compiled_nms"] == has_tv
    # a batch of 4 clips frees and reallocates ~36 MB of activations: ~9,200 page faults a batch by default
    assert got["faults_per_batch"] < 2000, got
