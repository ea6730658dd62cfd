"""Video inference: run a task model over whole videos, streaming per-frame results.

```python
from core_model.inference import Predictor
for event in Predictor(model_dir).predict_video(path, on_progress=None, should_cancel=None): ...
```
``endofm predict VIDEO|FOLDER|MANIFEST --model DIR --out preds.jsonl`` (``core_model.inference.cli``) writes the
same events as JSON lines. ``core_model.inference.planning`` defines the clip sampling and how overlapping clips are
merged.
"""

from core_model.inference.merge import FrameMerger
from core_model.inference.planning import Clip, plan_clips
from core_model.inference.predictor import Predictor, Preprocess, preprocess_frames

__all__ = ["Clip", "FrameMerger", "Predictor", "Preprocess", "plan_clips", "preprocess_frames"]
