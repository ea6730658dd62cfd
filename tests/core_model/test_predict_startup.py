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
    torch.set_num_threads(2)
    pred = Predictor(sys.argv[1], device="cpu", workers=2)
    marks = {}
    for ev in pred.predict_video(sys.argv[2]):
        if ev["event"] == "frame" and ev["frame"] in (15, 47):
            marks[ev["frame"]] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    faults = (marks[47] - marks[15]) / 32
    print(json.dumps({"rc": rc, "modules": sorted(m for m in ("torchvision", "torch._dynamo", "scipy", "timm")
                      if m in sys.modules), "compiled_nms": getattr(ops, "_tv_nms", lambda: None)() is not None, "faults_per_frame": faults}))
    """
)


def test_predict_imports_no_torchvision_and_does_not_refault_its_activations(tmp_path):
    video = write_texture_video(tmp_path / "v.mp4", 48, size=(90, 160), gop=12)
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
    assert len(frames) == 48 and any(f["boxes"] for f in frames)  # detection (NMS) really ran
    assert got["modules"] == [], got
    try:
        import importlib.util

        has_tv = importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        has_tv = False
    assert got["compiled_nms"] == has_tv
    # every batch frees and reallocates its activations (~36 MB for 4 clips): by default glibc hands them back to
    # the kernel and faults them in again, 290-660 page faults a frame here (~1,100 on 720p), 50-100 now
    assert got["faults_per_frame"] < 200, got


def test_loading_a_model_skips_the_random_init_its_file_overwrites(monkeypatch):
    """Building the backbone initialised every weight from a truncated normal (~1.1 s of start-up with the demo
    model) before the file's weights replaced them: loading now skips ``torch.nn.init`` and still holds exactly the
    file's weights; building a fresh model still initialises it."""
    import torch

    from core_model.checkpoint import load_model_dir
    from core_model.heads.io import build_task_model, load_task_model

    calls = []
    real = torch.nn.init.trunc_normal_
    monkeypatch.setattr(
        torch.nn.init, "trunc_normal_", lambda t, *a, **k: calls.append(1) or real(t, *a, **k)
    )
    model, meta = load_task_model(DEMO)
    assert calls == []
    state, _ = load_model_dir(DEMO)
    got = model.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        assert torch.equal(got[k], v.to(got[k].dtype)), k
    build_task_model(meta)  # a fresh model (fine-tuning from scratch) is still randomly initialised
    assert calls
