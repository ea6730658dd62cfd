"""The bundled demo model: small, fp16, documented as synthetic-only, and usable by ``endofm predict``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_model"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_model_is_small_fp16_and_has_three_heads():
    meta = json.loads((DEMO / "model.json").read_text())
    assert meta["weights"]["dtype"] == "float16"
    assert (DEMO / "model.safetensors").stat().st_size <= 15 * 2**20
    assert meta["arch"]["name"] == "endofm_tiny"
    assert set(meta["heads"]) == {"classification", "segmentation", "detection"}
    assert meta["heads"]["classification"]["classes"] == ["normal", "abnormal"]
    assert meta["provenance"]["kind"] == "finetune" and meta["provenance"]["metrics"]


def test_model_card_says_how_it_was_made_and_that_it_is_not_for_clinical_use():
    card = (DEMO / "MODEL_CARD.md").read_text().lower()
    assert "synthetic" in card and "not for clinical use" in card
    assert "scripts/make_demo_model.sh" in card and "tolerance" in card
    metrics = json.loads((DEMO / "metrics.json").read_text())
    assert {"default", "site_b"} <= set(metrics["held_out"])


def test_demo_model_predicts_every_frame_of_a_phantom_video(tmp_path):
    from core_model.inference import Predictor
    from core_model.phantom import generate_video

    video = generate_video(tmp_path, "case", seed=7, n_frames=12, size=128)
    events = list(Predictor(DEMO, device="cpu").predict_video(video))
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(12))
    assert set(frames[0]["probs"]) == {"normal", "abnormal"}
    assert abs(sum(frames[0]["probs"].values()) - 1.0) < 1e-3
    assert events[-1]["event"] == "video_done"


def _frames(video: Path) -> list[dict]:
    from core_model.inference import Predictor

    return [e for e in Predictor(DEMO, device="cpu").predict_video(video) if e["event"] == "frame"]


def test_demo_model_finds_the_polyp_of_a_held_out_video_and_little_on_a_normal_one(tmp_path):
    """What a user of the demo sees: on a held-out phantom video with a polyp the model outlines it and boxes it in
    most frames and calls the video abnormal; on a normal video it is much less sure and boxes little."""
    from pycocotools import mask as mask_utils

    from core_model.phantom import generate_video, load_ground_truth

    polyp = generate_video(tmp_path, "polyp", seed=5006, n_frames=16, size=128, polyp_scale=2.5)
    normal = generate_video(tmp_path, "normal", seed=5003, n_frames=16, size=128, polyp_scale=2.5)
    gt = load_ground_truth(polyp.with_suffix(".json"))
    assert gt.video_label == "abnormal" and all(gt.frame_has_polyp)
    assert load_ground_truth(normal.with_suffix(".json")).video_label == "normal"

    dices, boxed = [], 0
    frames = _frames(polyp)
    for e in frames:
        truth = gt.instance_mask(e["frame"]) > 0
        pred = torch.zeros(truth.shape, dtype=torch.bool).numpy()
        for m in e["masks"]:
            rle = {"size": m["rle"]["size"], "counts": m["rle"]["counts"].encode()}
            pred |= mask_utils.decode(rle).astype(bool)
        dices.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
        boxed += any(b["score"] >= 0.5 for b in e["boxes"])
    assert sum(dices) / len(dices) > 0.5
    assert boxed >= 10

    quiet = _frames(normal)
    abnormal = sum(e["probs"]["abnormal"] for e in frames) / len(frames)
    normal_abnormal = sum(e["probs"]["abnormal"] for e in quiet) / len(quiet)
    assert abnormal > normal_abnormal + 0.2
    assert sum(any(b["score"] >= 0.5 for b in e["boxes"]) for e in quiet) <= 4
