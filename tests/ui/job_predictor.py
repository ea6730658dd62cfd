"""A fast, deterministic predictor for GUI job tests (run as the job entry module, see the end of this file), so the app side of
analysis — job row, QProcess, JSON lines, recording, timeline refresh, cancel — is tested without loading torch.

Frames in the second half of a video are "abnormal" with a polyp box and mask; the first half is "normal".
``JOB_PREDICTOR_DELAY`` (seconds per frame) slows it down for cancel tests.
"""

from __future__ import annotations

import os
import time

import numpy as np

from tests.services.simple_predictor import progress_event


class HalfVideoPredictor:
    def __init__(self, model_dir, **kwargs) -> None:  # the job's factory signature
        self.model_dir = model_dir
        self.delay = float(os.environ.get("JOB_PREDICTOR_DELAY", "0"))

    def predict_video(self, path, on_progress=None, should_cancel=None):
        from pycocotools import mask as mask_utils

        from core_model.video import VideoReader

        with VideoReader(path) as r:
            n, h, w = len(r), r.meta.height, r.meta.width
        m = np.zeros((h, w), np.uint8)
        m[h // 3 : h // 2, w // 3 : w // 2] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode("ascii")
        for i in range(n):
            if should_cancel is not None and should_cancel():
                yield {"event": "cancelled", "video": str(path)}
                return
            if self.delay:
                time.sleep(self.delay)
            abnormal = i >= n // 2
            p = 0.9 if abnormal else 0.1
            ev = {"event": "frame", "video": str(path), "frame": i, "probs": {"normal": 1 - p, "abnormal": p}}
            if abnormal:
                ev["boxes"] = [{"label": "polyp", "score": 0.85, "bbox": [w / 3, h / 3, w / 2, h / 2]}]
                ev["masks"] = [{"label": "polyp", "score": 0.85, "rle": rle}]
            yield ev
            yield progress_event(str(path), i + 1, n)
        yield {"event": "video_done", "video": str(path), "probs": {"normal": 0.4, "abnormal": 0.6}}


class SlowOnNamePredictor(HalfVideoPredictor):
    """Like :class:`HalfVideoPredictor`, but slow (``JOB_PREDICTOR_DELAY`` per frame) only on videos whose file name
    contains "slow": a job whose first video is done long before the job ends."""

    def predict_video(self, path, on_progress=None, should_cancel=None):
        delay = self.delay
        self.delay = delay if "slow" in str(path) else 0.0
        try:
            yield from super().predict_video(path, on_progress, should_cancel)
        finally:
            self.delay = delay


if __name__ == "__main__":
    # this module as the job entry of the GUI tests: ``python -m tests.ui.job_predictor <kind> …`` runs
    # ``endoreview.jobs`` with the predictor class named by ``JOB_PREDICTOR_CLASS`` (default HalfVideoPredictor)
    import sys

    from endoreview.jobs.__main__ import main

    factory = globals()[os.environ.get("JOB_PREDICTOR_CLASS", "HalfVideoPredictor")]
    sys.exit(main(sys.argv[1:], predictor_factory=factory))
