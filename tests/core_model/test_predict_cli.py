"""``endofm predict``: a randomly initialised tiny model saved as a model directory, run on phantom videos."""

from __future__ import annotations

import json

import pytest
import torch

from core_model.checkpoint import save_model_dir
from core_model.cli import main as endofm
from core_model.inference.cli import parse_frames
from core_model.models import create_model
from core_model.phantom import render_video
from core_model.video import write_video
from tests.core_model.tiny_model import save_tiny_task_model

N_FRAMES, SIZE = 12, 96


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_task_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    for seed in (1, 2):
        frames, _ = render_video(seed=seed, n_frames=N_FRAMES, size=SIZE)
        write_video(d / f"case{seed}.mp4", frames, fps=30)
    return d


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predict_writes_one_json_line_per_frame_and_finishes_with_done(model_dir, videos, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    rc = endofm(["predict", str(videos / "case1.mp4"), "--model", str(model_dir), "--out", str(out)])
    assert rc == 0
    events = _events(out)
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(N_FRAMES))
    for e in frames:
        assert set(e["probs"]) == {"normal", "abnormal"} and abs(sum(e["probs"].values()) - 1) < 1e-3
        assert all(m["rle"]["size"] == [SIZE, SIZE] and m["label"] == "polyp" for m in e["masks"])
        for b in e["boxes"]:
            x0, y0, x1, y1 = b["bbox"]
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE and 0.1 <= b["score"] <= 1
    kinds = [e["event"] for e in events]
    assert kinds[0] == "video_start" and "progress" in kinds and kinds[-2:] == ["video_done", "done"]
    assert events[-1]["failed"] == 0 and events[-1]["frames"] == N_FRAMES
    # a parent process following stdout sees progress and the end, not the bulky frame lines
    stdout = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {e["event"] for e in stdout} >= {"video_start", "progress", "video_done", "done"}
    assert not any(e["event"] == "frame" for e in stdout)


def test_a_folder_with_a_broken_video_reports_it_and_finishes_the_rest(model_dir, videos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_broken.mp4").write_bytes(b"\x00" * 100)
    (folder / "b.mp4").write_bytes((videos / "case2.mp4").read_bytes())
    out = tmp_path / "preds.jsonl"
    rc = endofm(["predict", str(folder), "--model", str(model_dir), "--out", str(out), "--frames", "0,5:8"])
    assert rc == 1
    events = _events(out)
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["video"].endswith("a_broken.mp4")
    good = [e["frame"] for e in events if e["event"] == "frame" and e["video"].endswith("b.mp4")]
    assert good == [0, 5, 6, 7]
    assert events[-1] == {**events[-1], "event": "done", "videos": 2, "failed": 1}
    err = capsys.readouterr().err
    assert "a_broken.mp4" in err and "Traceback" not in err


def test_a_manifest_runs_its_videos(model_dir, videos, tmp_path):
    manifest = {
        "schema": "endoreview.training-manifest",
        "version": 1,
        "classes": {"video": ["normal", "abnormal"], "segment": [], "mask": ["polyp"], "box": ["polyp"]},
        "videos": [
            {
                "id": "v1",
                "path": str(videos / "case1.mp4"),
                "split": "test",
                "num_frames": N_FRAMES,
                "fps": 30.0,
                "width": SIZE,
                "height": SIZE,
                "frames": [],
            },
            {
                "id": "v2",
                "path": str(videos / "case2.mp4"),
                "split": "train",
                "num_frames": N_FRAMES,
                "fps": 30.0,
                "width": SIZE,
                "height": SIZE,
                "frames": [],
            },
        ],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    out = tmp_path / "preds.jsonl"
    rc = endofm(
        [
            "predict",
            str(path),
            "--split",
            "test",
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--frames",
            "3",
        ]
    )
    assert rc == 0
    done = [e["video"] for e in _events(out) if e["event"] == "video_done"]
    assert len(done) == 1 and done[0].endswith("case1.mp4")


@pytest.mark.parametrize("problem", ["missing", "corrupt", "bare-backbone"])
def test_a_bad_model_gives_an_error_event_and_exit_2(problem, videos, tmp_path, capsys):
    model = tmp_path / "model"
    if problem == "corrupt":
        model.mkdir()
        (model / "model.json").write_text("{not json")
        (model / "model.safetensors").write_bytes(b"junk")
    elif problem == "bare-backbone":  # a converted endo_fm.pth: a backbone without heads cannot predict
        save_model_dir(model, create_model("endofm_tiny", depth=1), arch="endofm_tiny")
    out = tmp_path / "preds.jsonl"
    rc = endofm(["predict", str(videos / "case1.mp4"), "--model", str(model), "--out", str(out)])
    assert rc == 2
    events = _events(out)
    assert events[0]["event"] == "error" and events[0]["video"] is None and events[-1]["event"] == "done"
    err = capsys.readouterr().err
    assert str(model) in err and "Traceback" not in err
    if problem == "bare-backbone":
        assert "no task heads" in err


def test_frame_specs():
    assert parse_frames("0,10,20:23,100:200:50") == [0, 10, 20, 21, 22, 100, 150]
    with pytest.raises(ValueError, match="--frames"):
        parse_frames("a:b")


def test_an_image_sequence_folder_is_one_video(model_dir, tmp_path):
    import cv2

    frames, _ = render_video(seed=3, n_frames=6, size=64)
    folder = tmp_path / "Original"
    folder.mkdir()
    for i, frame in enumerate(frames, start=1):  # 1.png ... 6.png, natural order
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = tmp_path / "preds.jsonl"
    assert (
        endofm(["predict", str(folder), "--model", str(model_dir), "--out", str(out), "--threads", "1"]) == 0
    )
    events = _events(out)
    assert [e["frame"] for e in events if e["event"] == "frame"] == list(range(6))
    assert all(m["rle"]["size"] == [64, 64] for e in events if e["event"] == "frame" for m in e["masks"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error(model_dir, videos, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    rc = endofm(
        [
            "predict",
            str(videos / "case1.mp4"),
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--device",
            "cuda",
        ]
    )
    assert rc == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_predict_reads_the_manifest_endofm_phantom_writes(model_dir, tmp_path, capsys):
    assert endofm(["phantom", str(tmp_path / "ph"), "--videos", "2", "--frames", "8", "--size", "64"]) == 0
    out = tmp_path / "preds.jsonl"
    rc = endofm(
        ["predict", str(tmp_path / "ph" / "manifest.json"), "--model", str(model_dir), "--out", str(out)]
    )
    assert rc == 0
    events = _events(out)
    assert sum(e["event"] == "video_done" for e in events) == 2
    assert sum(e["event"] == "frame" for e in events) == 16


def test_the_predict_process_exits_with_its_outputs_complete(model_dir, videos, tmp_path):
    """``python -m core_model predict`` ends right after flushing (no interpreter finalisation): the output file and
    stdout are complete and the exit status says a video failed."""
    import subprocess
    import sys

    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    out = tmp_path / "preds.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "core_model",
        "predict",
        str(videos / "case1.mp4"),
        str(tmp_path / "broken.mp4"),
    ]
    proc = subprocess.run(
        [*cmd, "--model", str(model_dir), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    events = _events(out)
    assert [e["frame"] for e in events if e["event"] == "frame"] == list(range(N_FRAMES))
    assert events[-1]["event"] == "done" and events[-1]["failed"] == 1 and events[-1]["frames"] == N_FRAMES
    assert json.loads(proc.stdout.splitlines()[-1])["event"] == "done"
    assert "broken.mp4" in proc.stderr
