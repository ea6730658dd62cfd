"""Archive mode: ``torchrun`` over a folder of videos with 2 CPU processes (gloo): disjoint shares, one output per
video, a rerun skips what is done, and the outputs import into the library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.checkpoint import ModelMeta
from core_model.contract import DataConfig
from core_model.heads import ClassificationHead, EndoFMTaskModel, SegmentationHead, save_task_model
from core_model.inference.archive import output_name
from core_model.models import create_model
from core_model.video import write_video

SIZE, T = 32, 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    bb = create_model("endofm_tiny", img_size=SIZE, num_frames=T, depth=2)
    heads = {
        "classification": ClassificationHead(192, ["normal", "abnormal"]),
        "segmentation": SegmentationHead(192, ["polyp"], skip_blocks=[0], decoder_channels=[16, 16, 16, 16]),
    }
    model = EndoFMTaskModel(bb, heads)
    data = DataConfig(
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_frames=T, img_size=(SIZE, SIZE), clip_stride=2
    )
    meta = ModelMeta(arch={"name": "endofm_tiny", "config": {}}, data=data)
    return save_task_model(tmp_path_factory.mktemp("m") / "model", model, meta)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(0)
    for k in range(5):
        frames = rng.integers(0, 255, (6 + k, 48, 64, 3), dtype=np.uint8)
        write_video(d / f"case{k}.mp4", frames, fps=10)
    return d


def _torchrun(model_dir: Path, videos: Path, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "core_model", "predict", str(videos), "--model", str(model_dir), "--out-dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return [json.loads(x) for f in sorted(out.glob("rank-*.jsonl")) for x in f.read_text().splitlines()]


@pytest.mark.slow  # two torchrun launches of 2 processes each: 38 s at load 5 on this 2-core machine, 2.5 min at load 20
def test_two_processes_share_an_archive_and_a_rerun_skips_finished_videos(model_dir, archive, tmp_path):
    out = tmp_path / "preds"
    videos = sorted(str(p) for p in archive.glob("*.mp4"))
    log = _torchrun(model_dir, archive, out)
    done = [e for e in log if e["event"] == "done"]
    by_rank = {r: {e["video"] for e in done if e["rank"] == r} for r in (0, 1)}
    assert by_rank[0] and by_rank[1] and not by_rank[0] & by_rank[1]  # both worked, on different videos
    assert by_rank[0] | by_rank[1] == set(videos)
    for v in videos:  # one complete output per video: every frame, then video_done
        events = [json.loads(x) for x in (out / output_name(v)).read_text().splitlines()]
        n = events[0]["num_frames"]
        assert [e["frame"] for e in events if e["event"] == "frame"] == list(range(n))
        assert events[-1]["event"] == "video_done"
    index = json.loads((out / "index.json").read_text())
    assert sorted(e["video"] for e in index["outputs"]) == videos
    assert not list(out.glob(".*.tmp"))  # no temporary output left behind

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("case*.jsonl")}
    (out / output_name(videos[2])).unlink()  # as if that video had never finished
    log2 = [e for e in _torchrun(model_dir, archive, out) if e not in log]  # the rank logs are appended to
    assert sorted(e["video"] for e in log2 if e["event"] == "skipped") == sorted(set(videos) - {videos[2]})
    assert [e["video"] for e in log2 if e["event"] == "done"] == [videos[2]]
    for name, t in stamps.items():
        if name != output_name(videos[2]):
            assert (out / name).stat().st_mtime_ns == t  # finished outputs were not rewritten

    # the outputs import into the library, once
    from endoreview.services.predictions import import_prediction_outputs
    from endoreview.services.projects import ProjectService
    from endoreview.store import Store

    store = Store.open(str(tmp_path / "lib.sqlite3"))
    project = ProjectService(store).default_project()
    runs = import_prediction_outputs(store, project.id, [out])
    assert [r.state for r in runs] == ["finished"] * len(videos)
    for r in runs:
        video = store.get_video(r.video_id)
        assert r.frames == video.frame_count and len(store.frame_probs(r.run_id)) == video.frame_count
    again = import_prediction_outputs(store, project.id, [out])
    assert [r.state for r in again] == ["skipped"] * len(videos)
