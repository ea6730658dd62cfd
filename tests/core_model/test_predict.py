"""Clip planning, the video Predictor (merge rules, coordinates, streaming, progress, cancellation, bad input) and
task-model save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core_model.checkpoint import CheckpointError, ModelMeta
from core_model.heads import (
    DetectionHead,
    EndoFMTaskModel,
    SegmentationHead,
    load_task_model,
    save_task_model,
)
from core_model.inference import Predictor, Preprocess, plan_clips, preprocess_frames
from core_model.inference.stream import normalise_frames, resize_frames
from core_model.models import create_model
from core_model.video import write_video
from tests.core_model.tiny_model import tiny_task_model

SIZE, T = 64, 4
PRE = Preprocess(num_frames=T, img_size=(SIZE, SIZE), frame_stride=1, clip_stride=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ planning
@pytest.mark.parametrize(
    "n,t,s,c",
    [(21, 4, 1, 2), (20, 4, 2, None), (3, 4, 1, 2), (50, 8, 3, 12), (100, 8, 32, None), (9, 4, 1, 100)],
)
def test_every_frame_is_sampled_and_clips_come_in_start_order(n, t, s, c):
    clips = plan_clips(n, t, s, c)
    assert [c_.start for c_ in clips] == sorted({c_.start for c_ in clips})
    assert {i for c_ in clips for i in c_.indices} == set(range(n))
    for clip in clips:
        assert len(clip.indices) == t and all(0 <= i < n for i in clip.indices)
        if n >= (t - 1) * s + 1:  # a video long enough for one span: samples are exactly frame_stride apart
            assert all(b - a == s for a, b in zip(clip.indices, clip.indices[1:]))


def test_clip_stride_is_the_gap_between_clip_starts():
    clips = plan_clips(20, 4, 1, 3)
    assert [c.start for c in clips] == [0, 3, 6, 9, 12, 15, 16]  # the last one is aligned to the end
    assert clips[-1].indices == (16, 17, 18, 19)


def test_short_video_repeats_its_last_frame():
    [clip] = plan_clips(3, 4, 1, 2)
    assert clip.indices == (0, 1, 2, 2) and clip.span_end == 3


def test_frame_subset_runs_only_the_clips_it_needs():
    clips = plan_clips(1000, 8, 2, 8, frames=[500])
    assert len(clips) == 1 and 500 in clips[0].indices
    assert clips[0].indices.index(500) in (3, 4)  # near the centre of the clip
    with pytest.raises(ValueError, match="outside the video"):
        plan_clips(10, 4, 1, 2, frames=[10])


def test_classification_only_plans_need_coverage_not_samples():
    dense = plan_clips(200, 8, 8, None)
    sparse = plan_clips(200, 8, 8, None, dense=False)
    assert len(sparse) < len(dense)
    assert all(any(c.covers(f) for c in sparse) for f in range(200))


# ------------------------------------------------------------------------------------------------ predictor
_model = tiny_task_model


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """21 frames of 90x120 whose brightness changes with the frame index (so clips differ)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, (90, 120, 3), dtype=np.uint8)
    frames = [np.clip(base.astype(int) + 3 * i, 0, 255).astype(np.uint8) for i in range(21)]
    return write_video(tmp_path_factory.mktemp("vid") / "clip.mp4", frames, fps=10)


def test_frame_probabilities_are_the_mean_of_the_clips_covering_the_frame(video):
    model = _model(("classification",)).eval()
    events = list(Predictor(model, PRE, device="cpu").predict_video(video))
    frames = {e["frame"]: e for e in events if e["event"] == "frame"}
    assert sorted(frames) == list(range(21))
    # the clip probabilities, computed by hand from the decoded frames
    from core_model.video import VideoReader

    with VideoReader(video) as r:
        # the serving transform: resized on uint8 as each frame is decoded (core_model.inference.stream)
        u8 = resize_frames(r.get_batch(list(range(21))), PRE.img_size)
        x_all = torch.from_numpy(normalise_frames(u8, PRE.mean, PRE.std))  # [21, 3, S, S]
    clips = plan_clips(21, T, 1, 2, dense=False)
    with torch.no_grad():
        batch = torch.stack([x_all[list(c.indices)].permute(1, 0, 2, 3) for c in clips])
        clip_probs = torch.softmax(model(batch)["classification"], 1).numpy()
    for f in (0, 1, 5, 20):
        covering = [k for k, c in enumerate(clips) if c.covers(f)]
        expected = clip_probs[covering].mean(0)
        got = np.array([frames[f]["probs"]["normal"], frames[f]["probs"]["abnormal"]])
        assert np.allclose(got, expected, atol=2e-4), f
    assert len([k for k, c in enumerate(clips) if c.covers(5)]) == 2  # frame 5 really is an overlap
    done = events[-1]
    assert done["event"] == "video_done" and done["frames"] == 21
    assert np.isclose(done["probs"]["abnormal"], clip_probs[:, 1].mean(), atol=2e-4)


class _FixedSegHead(SegmentationHead):
    """Predicts 'polyp' on the left half of the model input, whatever the input."""

    def predict(self, logits):
        p = torch.zeros_like(logits)
        half = logits.shape[-1] // 2
        p[:, :, 0] = 1.0  # [B, T, K, H, W]
        p[:, :, 0, :, :half] = 0.0
        p[:, :, 1, :, :half] = 1.0
        return p


class _FixedDetHead(DetectionHead):
    """One box [8, 16, 32, 48] (model-input pixels) with score 0.9 on every frame."""

    def predict(self, out):
        n = out.cls[0].shape[0]
        return [
            {
                "boxes": torch.tensor([[8.0, 16.0, 32.0, 48.0]]),
                "scores": torch.tensor([0.9]),
                "labels": torch.tensor([0]),
            }
            for _ in range(n)
        ]


def test_masks_and_boxes_come_back_in_original_frame_coordinates(video):
    from pycocotools import mask as mask_utils

    torch.manual_seed(0)
    bb = create_model("endofm_tiny", img_size=SIZE, num_frames=T)
    seg = _FixedSegHead(192, ["polyp"], skip_blocks=[2], decoder_channels=[16, 16, 16, 16])
    det = _FixedDetHead(192, ["polyp"], fpn_channels=32, num_convs=1)
    model = EndoFMTaskModel(bb, {"segmentation": seg, "detection": det})
    events = list(Predictor(model, PRE, device="cpu").predict_video(video, frames=[0, 7]))
    frames = [e for e in events if e["event"] == "frame"]
    assert [f["frame"] for f in frames] == [0, 7]
    for f in frames:
        [m] = f["masks"]
        assert m["label"] == "polyp" and m["score"] == pytest.approx(1.0, abs=0.02)
        assert m["rle"]["size"] == [90, 120] and isinstance(m["rle"]["counts"], str)
        mask = mask_utils.decode({"size": m["rle"]["size"], "counts": m["rle"]["counts"].encode()})
        assert mask[:, :58].all() and not mask[:, 62:].any()  # left half of the 120-px-wide frame
        [b] = f["boxes"]
        # 64-px model input -> 120 x 90 frame: x * 120/64, y * 90/64
        assert b["bbox"] == pytest.approx([15.0, 22.5, 60.0, 67.5])
        assert b["label"] == "polyp" and b["score"] == pytest.approx(0.9)
    json.dumps(events)  # every event is JSON-ready


def test_results_stream_before_the_video_ends_with_progress_and_cancellation(video):
    model = _model(("classification", "segmentation")).eval()
    pred = Predictor(model, PRE, device="cpu", batch_size=2)
    progress: list[tuple[int, int]] = []
    stream = pred.predict_video(video, on_progress=lambda d, t: progress.append((d, t)))
    kinds = []
    for ev in stream:
        kinds.append(ev["event"])
        if ev["event"] == "frame" and ev["frame"] == 0:
            assert progress == []  # frame 0 arrives before the rest of the video was processed
    assert kinds[0] == "video_start" and kinds[-1] == "video_done" and kinds.count("frame") == 21
    start = next(pred.predict_video(video))
    assert start["sampling"] == {
        "clip_len": T,
        "frame_stride": 1,
        "clip_stride": 2,
        "img_size": [SIZE, SIZE],
        "protocol": "default",
        "sampling": "stride",
        "clips": "sliding",
        "resize": "squash",
    }
    assert start["num_frames"] == 21 and (start["width"], start["height"]) == (120, 90)
    assert progress[-1] == (21, 21) and [d for d, _ in progress] == sorted(d for d, _ in progress)

    calls = []

    def cancel_after_two():
        calls.append(1)
        return len(calls) > 2

    events = list(pred.predict_video(video, should_cancel=cancel_after_two))
    assert events[-1]["event"] == "cancelled"
    assert 0 < sum(e["event"] == "frame" for e in events) < 21
    assert not any(e["event"] == "video_done" for e in events)


def test_a_bad_video_gives_an_error_event_naming_it(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    events = list(Predictor(_model(("classification",)), PRE, device="cpu").predict_video(bad))
    assert [e["event"] for e in events] == ["error"]
    assert "broken.mp4" in events[0]["message"]
    missing = list(
        Predictor(_model(("classification",)), PRE, device="cpu").predict_video(tmp_path / "nope.mp4")
    )
    assert missing[0]["event"] == "error" and "nope.mp4" in missing[0]["message"]


# ------------------------------------------------------------------------------------------------ save / load
def _meta(model: EndoFMTaskModel) -> ModelMeta:
    return ModelMeta.for_config(
        model.backbone.cfg, "endofm_tiny", preprocess={"frame_stride": 1, "clip_stride": 2}
    )


def test_a_saved_task_model_loads_back_and_predicts_the_same(tmp_path, video):
    model = _model().eval()
    save_task_model(tmp_path / "m", model, _meta(model))
    loaded, meta = load_task_model(tmp_path / "m")
    assert set(meta.heads) == {"classification", "segmentation", "detection"}
    assert meta.heads["segmentation"]["classes"] == ["polyp"]
    x = torch.randn(1, 3, T, SIZE, SIZE)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a["classification"], b["classification"])
    assert torch.equal(a["segmentation"], b["segmentation"])
    # the Predictor takes the directory and its preprocessing
    events = list(Predictor(tmp_path / "m", device="cpu").predict_video(video, frames=[3]))
    assert [e["frame"] for e in events if e["event"] == "frame"] == [3]


def test_a_model_loaded_in_the_background_predicts_the_same_and_an_early_stop_ends_decoding(tmp_path, video):
    """``endofm predict`` reads model.json, starts decoding and loads the weights meanwhile: same events as a model
    loaded first; a consumer that stops after the first event leaves no decoding thread behind."""
    import threading

    model = _model().eval()
    save_task_model(tmp_path / "m", model, _meta(model))

    def frames(pred):
        return [e for e in pred.predict_video(video) if e["event"] == "frame"]

    want = frames(Predictor(tmp_path / "m", device="cpu"))
    got = frames(Predictor(tmp_path / "m", device="cpu", load_in_background=True))
    assert json.dumps(got) == json.dumps(want) and len(got) == 21
    gen = Predictor(tmp_path / "m", device="cpu", load_in_background=True).predict_video(video)
    assert next(gen)["event"] == "video_start"
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "endofm-prefetch" and t.is_alive()]


def test_loading_refuses_weights_that_do_not_match_the_heads(tmp_path):
    model = _model(("classification",))
    meta = _meta(model)
    save_task_model(tmp_path / "m", model, meta)
    # model.json now claims a segmentation head the weights do not have
    path = tmp_path / "m" / "model.json"
    raw = json.loads(path.read_text())
    raw["heads"]["segmentation"] = {"classes": ["polyp"]}
    path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="missing heads.segmentation"):
        load_task_model(tmp_path / "m")
    raw["heads"] = {}
    path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="no task heads"):
        load_task_model(tmp_path / "m")


def test_inference_preprocessing_is_the_fine_tuning_evaluation_transform():
    from core_model.finetune.augment import AugmentConfig, normalize, transform_clip

    frames = np.random.default_rng(0).integers(0, 256, (4, 90, 120, 3), dtype=np.uint8)
    ours = torch.from_numpy(preprocess_frames(frames, PRE)).permute(1, 0, 2, 3)  # [3, T, S, S]
    theirs, _ = transform_clip(frames, None, AugmentConfig(size=SIZE))
    theirs = normalize(theirs, PRE.mean, PRE.std)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_frame_stride_above_one_still_gives_every_frame_in_order(video):
    model = _model(("segmentation",)).eval()
    pre = Preprocess(num_frames=T, img_size=(SIZE, SIZE), frame_stride=3, clip_stride=6)
    events = list(Predictor(model, pre, device="cpu", batch_size=3).predict_video(video))
    frames = [e["frame"] for e in events if e["event"] == "frame"]
    assert frames == list(range(21))  # sampled 3 apart, yet every frame gets its mask, in order
    assert events[0]["clips"] > len(range(0, 21 - 9, 6))  # the regular grid plus clips filling the gaps
