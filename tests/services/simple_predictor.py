"""A small real predictor for the job tests: finds the bright square of ``tests.services.videos`` by threshold.

It speaks the ``core_model.inference.Predictor`` event protocol. Its "model directory" holds ``model.json`` with
``{"threshold": 200, "delay_s": 0.0}``; ``delay_s`` slows it down per frame so a test can cancel it mid-video.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def progress_event(video: str, done: int, total: int) -> dict:
    """The predictor protocol's ``progress`` event after ``done`` of ``total`` frames of ``video``."""
    return {"event": "progress", "video": video, "done": done, "total": total, "fraction": done / total}


class BrightnessPredictor:
    def __init__(self, model_dir: str, **_: object):
        cfg = json.loads((Path(model_dir) / "model.json").read_text())
        self.threshold = float(cfg.get("threshold", 200))
        self.delay = float(cfg.get("delay_s", 0.0))

    def predict_video(self, path, on_progress=None, should_cancel=None):
        from pycocotools import mask as mask_utils

        from core_model.video import VideoError, VideoReader

        video = str(path)
        try:
            reader = VideoReader(path)
        except VideoError as e:
            yield {"event": "error", "video": video, "message": str(e)}
            return
        with reader:
            n = len(reader)
            yield {"event": "video_start", "video": video, "num_frames": n, "frames": n}
            means = []
            for i in range(n):
                if should_cancel is not None and should_cancel():
                    yield {"event": "cancelled", "video": video, "done": i, "total": n}
                    return
                frame = reader[i]
                m = (frame.min(axis=2) >= self.threshold).astype(np.uint8)
                p = float(min(1.0, m.mean() * 20))
                means.append(p)
                ev = {"event": "frame", "video": video, "frame": i, "probs": {"normal": 1 - p, "abnormal": p}}
                ev["masks"], ev["boxes"] = [], []
                if m.any():
                    r = mask_utils.encode(np.asfortranarray(m))
                    ev["masks"] = [
                        {
                            "label": "polyp",
                            "score": p,
                            "rle": {"size": list(m.shape), "counts": r["counts"].decode()},
                        }
                    ]
                    ys, xs = np.nonzero(m)
                    ev["boxes"] = [
                        {
                            "label": "polyp",
                            "score": p,
                            "bbox": [
                                float(xs.min()),
                                float(ys.min()),
                                float(xs.max() + 1),
                                float(ys.max() + 1),
                            ],
                        }
                    ]
                yield ev
                yield progress_event(video, i + 1, n)
                if self.delay:
                    time.sleep(self.delay)
            mean = float(np.mean(means)) if means else 0.0
            yield {
                "event": "video_done",
                "video": video,
                "frames": n,
                "probs": {"normal": 1 - mean, "abnormal": mean},
            }


if (
    __name__ == "__main__"
):  # this module as a job entry: `python -m tests.services.simple_predictor <kind> …` with BrightnessPredictor
    import sys

    from endoreview.jobs.__main__ import main

    sys.exit(main(sys.argv[1:], predictor_factory=BrightnessPredictor))
