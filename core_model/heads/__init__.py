"""Task heads on the Endo-FM backbone (the paper's three downstream tasks) and the multi-task model.

```python
from core_model.heads import ClassificationHead, SegmentationHead, DetectionHead, EndoFMTaskModel
from core_model.heads import build_task_model, load_task_model, save_task_model
```

See each head's module docstring for its output format and loss; ``core_model.heads.features`` for what the
backbone hands to the heads.
"""

from core_model.heads.base import TaskHead
from core_model.heads.classification import ClassificationHead
from core_model.heads.detection import DetectionHead, DetectionOutput
from core_model.heads.features import BackboneFeatures, evenly_spaced_blocks, frame_maps
from core_model.heads.io import build_task_model, load_task_model, save_task_model
from core_model.heads.segmentation import SegmentationHead, segmentation_loss
from core_model.heads.task_model import HEAD_TYPES, EndoFMTaskModel, build_head

__all__ = [
    "HEAD_TYPES",
    "BackboneFeatures",
    "ClassificationHead",
    "DetectionHead",
    "DetectionOutput",
    "EndoFMTaskModel",
    "SegmentationHead",
    "TaskHead",
    "build_head",
    "build_task_model",
    "load_task_model",
    "save_task_model",
    "evenly_spaced_blocks",
    "frame_maps",
    "segmentation_loss",
]
