"""``endofm evaluate`` scores what serving shows: the same clips, resize/crop and whole-video decision as
``endofm predict`` (issue 20, items 4-5), with the screening figures at the model's operating point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.core_model.test_model_contract import DEMO, _polyp_seed, _predict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _entry(name: str, n: int, label: str) -> dict:
    return {
        "id": name,
        "path": f"{name}.mp4",
        "split": "test",
        "num_frames": n,
        "fps": 30.0,
        "width": 128,
        "height": 128,
        "site": "test",
        "video_label": label,
        "segments": [],
        "frames": [],
    }


def test_a_short_polyp_video_gets_the_same_call_from_evaluate_as_from_predict(tmp_path, capsys):
    """3 s of normal mucosa with a polyp in view for 0.6 s, labelled abnormal, and a normal video: evaluation calls
    the first abnormal exactly as ``predict`` does (the demo model's calibrated sustained rule), where the old
    evaluation's argmax of the mean over clips read it as normal; sensitivity/specificity are reported at the
    model's operating point next to the legacy figures."""
    from core_model.contract import read_model_json
    from core_model.finetune.evaluate_cli import main
    from core_model.video import write_video

    normal, _ = _polyp_seed(90, want=0)
    polyp, has = _polyp_seed(48, want=18)
    short = normal.copy()
    short[45:63] = polyp[np.flatnonzero(has)[:18]]
    write_video(tmp_path / "short.mp4", short, fps=30.0)
    write_video(tmp_path / "calm.mp4", normal[:30], fps=30.0)
    manifest = {
        "schema": "endoreview.training-manifest",
        "version": 1,
        "source": {"generator": "tests"},
        "classes": {"video": ["normal", "abnormal"], "mask": ["polyp"], "box": ["polyp"]},
        "videos": [_entry("short", 90, "abnormal"), _entry("calm", 30, "normal")],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    served, _ = _predict(tmp_path / "short.mp4")
    out = tmp_path / "eval.json"
    argv = ["--model", str(DEMO), "--manifest", str(tmp_path / "manifest.json"), "--tasks", "classification"]
    assert main([*argv, "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])["metrics"]
    call = json.loads(out.read_text())["frames"]["short"]["-1"]

    assert served["decision"]["label"] == "abnormal"
    assert (
        call["video_pred"] == 1 and call["decision"] == served["decision"]["text"]
    )  # the same call, same words
    assert call["mean_argmax_pred"] == 0  # what the old evaluation scored: "normal"
    op = read_model_json(DEMO).operating_point("classification")
    assert metrics["classification/threshold"] == pytest.approx(op.threshold)
    assert metrics["classification/sensitivity"] == 1.0 and metrics["classification/n_positive"] == 1
    assert metrics["classification/n_negative"] == 1
    calm = json.loads(out.read_text())["frames"]["calm"]["-1"]
    assert metrics["classification/specificity"] == (0.0 if calm["positive"] else 1.0)
    assert metrics["classification/mean_argmax_f1"] == 0.0  # the legacy call missed the only abnormal video
    assert metrics["classification/recall"] == 1.0
