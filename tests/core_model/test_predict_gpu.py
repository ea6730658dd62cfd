"""The Predictor on a CUDA GPU (bf16 autocast) agrees with the CPU in fp32. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.heads import ClassificationHead, DetectionHead, EndoFMTaskModel, SegmentationHead
from core_model.inference import Predictor, Preprocess
from core_model.models import create_model
from core_model.phantom import render_video
from core_model.video import write_video

pytestmark = pytest.mark.gpu


def test_gpu_bf16_predictions_match_the_cpu(tmp_path):
    from pycocotools import mask as mask_utils

    torch.manual_seed(0)
    bb = create_model("endofm_tiny", num_frames=8)
    heads = {
        "classification": ClassificationHead(192, ["normal", "abnormal"]),
        "segmentation": SegmentationHead.from_config({"classes": ["polyp"]}, 192, 16, 6),
        "detection": DetectionHead.from_config({"classes": ["polyp"]}, 192, 16, 6),
    }
    model = EndoFMTaskModel(bb, heads)
    frames, _ = render_video(seed=4, n_frames=24, size=256)
    video = write_video(tmp_path / "v.mp4", frames)
    pre = Preprocess(num_frames=8, img_size=(112, 112), frame_stride=1, clip_stride=4)

    def run(device):
        events = Predictor(model, pre, device=device, box_threshold=0.0).predict_video(video)
        return {e["frame"]: e for e in events if e["event"] == "frame"}

    cpu, gpu = run("cpu"), run("cuda")
    assert sorted(gpu) == list(range(24))
    assert next(model.parameters()).device.type == "cuda"
    for f in range(24):
        for c in ("normal", "abnormal"):
            assert abs(cpu[f]["probs"][c] - gpu[f]["probs"][c]) < 0.02
        a = [mask_utils.decode({**m["rle"], "counts": m["rle"]["counts"].encode()}) for m in cpu[f]["masks"]]
        b = [mask_utils.decode({**m["rle"], "counts": m["rle"]["counts"].encode()}) for m in gpu[f]["masks"]]
        if a and b:
            inter = np.logical_and(a[0], b[0]).sum()
            union = np.logical_or(a[0], b[0]).sum()
            assert inter / max(union, 1) > 0.9
