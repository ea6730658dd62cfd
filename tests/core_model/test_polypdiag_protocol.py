"""Evaluation protocol = serving protocol: an official fine-tuned PolypDiag checkpoint, converted by ``endofm
convert``, gives through ``Predictor`` (the app's serving path) the per-video decision of the official evaluation.

The official preprocessing is re-implemented here from ../shared/docs/endofm-reference.md §4.2 / §5.1 (not from
the product's code): one clip per video from frame 0 spanning ``32 * 8 / 30 * fps`` frames, 8 indices by
``linspace(start, end, 8)`` clamped to the last frame and truncated; frames / 255 normalised with mean 0.45 /
std 0.225; the short side scaled to 224 with ``F.interpolate(bilinear, align_corners=False)`` (SlowFast ``scale``:
the long side ``floor(long / short * 224)``); the 224 crop at the left (landscape) or top (portrait)
(``uniform_crop`` with spatial_idx 0); ``model(clip)`` -> final-norm CLS -> the linear classifier; the call is the
argmax of the two logits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core_model.models import create_model
from core_model.video import VideoReader, write_video


def _official_clip(video: Path) -> torch.Tensor:
    """[1, 3, 8, 224, 224] exactly as the official PolypDiag validation builds it."""
    with VideoReader(video) as r:
        fps, n = r.meta.fps, len(r)
        clip_size = 32 * 8 / 30 * fps  # SAMPLING_RATE * NUM_FRAMES / TARGET_FPS * fps
        start, end = 0.0, clip_size - 1  # clip_idx 0: the window starts at frame 0
        idx = torch.linspace(start, end, 8).clamp(0, n - 1).long().tolist()
        frames = torch.from_numpy(r.get_batch(idx)).float() / 255.0  # [T, H, W, 3]
    frames = (frames - 0.45) / 0.225  # tensor_normalize, before the spatial transform
    x = frames.permute(0, 3, 1, 2)  # [T, 3, H, W]
    h, w = x.shape[-2:]
    size = 224
    new_h, new_w = size, size
    if w < h:
        new_h = int(math.floor(h / w * size))
    else:
        new_w = int(math.floor(w / h * size))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    y_off = int(math.ceil((new_h - size) / 2))
    x_off = int(math.ceil((new_w - size) / 2))
    if new_h > new_w:
        y_off = 0  # spatial_idx 0: top
    else:
        x_off = 0  # spatial_idx 0: left
    x = x[:, :, y_off : y_off + size, x_off : x_off + size]
    return x.permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, T, 224, 224]


@pytest.fixture(scope="module")
def polypdiag(tmp_path_factory):
    """An official-layout fine-tuned PolypDiag file (``backbone_state_dict`` with ``module.``, the linear
    classifier in ``state_dict``), small depth for speed, and its ``endofm convert`` output."""
    from core_model.checkpoint_cli import main as convert_main

    root = tmp_path_factory.mktemp("polypdiag")
    torch.manual_seed(0)
    bb = create_model("endofm_tiny", depth=2, img_size=224, num_frames=8).eval()
    linear = torch.nn.Linear(192, 2)
    torch.nn.init.normal_(linear.weight, std=0.5)
    ckpt = {
        "epoch": 20,
        "backbone_state_dict": {f"module.{k}": v for k, v in bb.state_dict().items()},
        "state_dict": {f"module.linear.{k}": v for k, v in linear.state_dict().items()},
        "best_f1": 0.9,
    }
    torch.save(ckpt, root / "polypdiag.pth")
    assert convert_main([str(root / "polypdiag.pth"), "-o", str(root / "model")]) == 0
    return bb, linear, root / "model"


def _video(path: Path, fps: float, w: int, h: int, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for t in range(n):  # moving coloured blobs on a reddish background: something a classifier reacts to
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (150, 70, 60)
        for k in range(4):
            cx, cy = (37 * k + 3 * t) % w, (53 * k + 2 * t) % h
            r = 20 + 10 * k
            on = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            img[on] = (
                rng.integers(0, 255, 3, dtype=np.uint8) if t % 50 == 0 else (230 - 40 * k, 160, 90 + 30 * k)
            )
        img[:, : w // 5] = (
            20,
            20,
            20,
        )  # a dark band at the left: the left crop keeps it, a centre crop would not
        frames.append(img)
    return write_video(path, frames, fps=fps)


@pytest.mark.parametrize(("fps", "w", "h"), [(30.0, 320, 240), (25.0, 240, 320)])
def test_served_decision_equals_the_official_protocol(polypdiag, tmp_path, fps, w, h):
    from core_model.contract import read_model_json
    from core_model.inference import Predictor

    bb, linear, model_dir = polypdiag
    meta = read_model_json(model_dir)
    assert meta.data.protocol == "polypdiag-official" and meta.data.clips == "first"
    video = _video(tmp_path / "v.mp4", fps, w, h, n=300, seed=1)

    with torch.no_grad():
        logits = linear(bb(_official_clip(video)))
    official = torch.softmax(logits, -1)[0].numpy()
    official_call = ["normal", "abnormal"][int(logits.argmax())]

    events = list(Predictor(model_dir, batch_size=1).predict_video(video))
    done = events[-1]
    assert done["event"] == "video_done" and done["clips"] == 1
    served = np.array([done["probs"]["normal"], done["probs"]["abnormal"]])
    np.testing.assert_allclose(served, official, atol=2e-4)
    assert done["decision"]["label"] == official_call
    assert abs(official[1] - 0.5) > 1e-3  # the call is not a coin toss at the decision boundary

    # the clip itself: the serving path's frames and pixels are the official ones; the old serving (whole frame
    # squashed, antialiased) feeds other pixels
    from core_model.inference import preprocess_frames

    with VideoReader(video) as r:
        idx = np.minimum(meta.data.clip_offsets(r.meta.fps), len(r) - 1)
        raw = r.get_batch(idx.tolist())
    ours = torch.from_numpy(preprocess_frames(raw, meta.data)).permute(1, 0, 2, 3).unsqueeze(0)
    torch.testing.assert_close(ours, _official_clip(video), atol=1e-4, rtol=0)
    old = preprocess_frames(raw, meta.data.replace(resize="squash", antialias=True))
    assert np.abs(old - ours[0].permute(1, 0, 2, 3).numpy()).max() > 0.5
