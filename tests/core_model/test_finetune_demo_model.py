"""The bundled demo model: small, fp16, documented as synthetic-only, and usable by ``endofm predict``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_model"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
