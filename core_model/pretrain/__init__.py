"""Self-supervised pretraining with the full Endo-FM recipe (DINO-style video self-distillation).

```python
from core_model.pretrain import load_config, train
cfg = load_config("core_model/pretrain/configs/demo_tiny.yaml", ["data.path=clips/train.csv"])
result = train(cfg, out_dir="runs/demo", emit=print)   # result.export_dir/model is a project model directory
```
CLI: ``endofm pretrain --config CONFIG.yaml [--out DIR] [--resume] [--set key=value ...]`` (``cli.py``) and
``endofm cut-clips`` (``clips.py``). Modules: ``config`` (typed YAML config), ``views`` (temporal sampling §3.2),
``augment`` (§3.3), ``data`` (clip list, dataset), ``head`` (DINO head, multi-crop wrapper §3.4/§3.6), ``loss``
(§3.5), ``optim`` (groups, schedules, clipping, EMA §3.7), ``state`` (checkpoints, exports), ``train`` (the recipe).
"""

from core_model.pretrain.config import PretrainConfig, load_config, save_config
from core_model.pretrain.train import NonFiniteLossError, TrainResult, build_models, train

__all__ = [
    "NonFiniteLossError",
    "PretrainConfig",
    "TrainResult",
    "build_models",
    "load_config",
    "save_config",
    "train",
]
