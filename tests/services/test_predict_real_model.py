"""End to end with the real ``core_model.inference.Predictor``: a tiny randomly initialised Endo-FM task model saved
as a model directory, a phantom video imported into the library, ``python -m endoreview.jobs predict`` recording
its output. Checks the plumbing (every frame recorded with its probabilities, provenance, run-level suggestions),
not the (random) model's accuracy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from endoreview.jobs.protocol import parse_line
from endoreview.services.library import LibraryService
from endoreview.services.projects import ProjectService
from endoreview.store import Store

ROOT = Path(__file__).resolve().parents[2]
N_FRAMES = 10


@pytest.fixture
def tiny_model_dir(tmp_path):
    import torch

    from core_model.checkpoint import ModelMeta
    from core_model.heads import ClassificationHead, EndoFMTaskModel, SegmentationHead, save_task_model
    from core_model.models import create_model

    torch.manual_seed(0)
    bb = create_model("endofm_tiny", img_size=32, num_frames=4, depth=2)
    heads = {
        "classification": ClassificationHead(bb.embed_dim, ["normal", "abnormal"]),
        "segmentation": SegmentationHead.from_config(
            {"classes": ["polyp"], "decoder_channels": [16, 16, 8, 8]}, bb.embed_dim, 16, 2
        ),
    }
    d = tmp_path / "tiny-model"
    meta = ModelMeta.for_config(bb.cfg, "endofm_tiny", preprocess={"frame_stride": 1, "clip_stride": 4})
    save_task_model(d, EndoFMTaskModel(bb, heads), meta)
    return d


@pytest.mark.slow  # torch + a model in a subprocess: ~15 s on 2 idle cores, too much for the quick suite
def test_predict_job_with_the_real_predictor(tmp_path, tiny_model_dir):
    from core_model.phantom import render_video
    from core_model.video import write_video

    url = f"sqlite:///{tmp_path / 'labels.sqlite3'}"
    frames, _ = render_video(seed=3, n_frames=N_FRAMES, size=64)
    src = write_video(tmp_path / "case3.mp4", frames, fps=25)
    with Store.open(url, reviewer="alice") as store:
        project = ProjectService(store).default_project()
        video, _ = LibraryService(store).import_video(project.id, src)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENDOREVIEW_DB_URL": url}
    proc = subprocess.run(
        [sys.executable, "-m", "endoreview.jobs", "predict", "--video-id", str(video.id), "--model",
         str(tiny_model_dir), "--device", "cpu", "--batch-size", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [parse_line(x) for x in proc.stdout.splitlines()]
    assert events[-1]["state"] == "succeeded", events[-1]
    with Store.open(url) as store:
        (run,) = store.list_prediction_runs(video.id)
        mv = store.get_model_version(run.model_version_id)
        assert (run.state, run.frames_done, mv.architecture) == ("finished", N_FRAMES, "endofm_tiny")
        probs = store.frame_probs(run.id)
        assert sorted(probs) == list(range(N_FRAMES))
        assert all(
            set(p) == {"normal", "abnormal"} and abs(sum(p.values()) - 1) < 1e-3 for p in probs.values()
        )
        vc = store.labels_for_video(video.id, kinds=["video_class"])
        assert len(vc) == 1 and vc[0].state == "suggested" and vc[0].model_version_id == mv.id
        for lab in store.labels_for_video(video.id, kinds=["mask"]):
            assert lab.rle["size"] == [64, 64] and lab.origin == "predicted"
