"""Endo-FM backbone (TimeSformer, divided space-time attention) with official numerics and key names.

```python
from core_model.models import create_model, EndoFMConfig, EndoFM
m = create_model("endofm_tiny" | "endofm_small" | "endofm_base", checkpoint=None, **overrides)
m(x)                          # x [B, 3, T, H, W] -> final-norm CLS [B, D]
m.forward_features(x)         # [B, 1 + N*T, D], CLS then (h w t) token order, after the final norm
m.forward_intermediates(x, indices=[...])   # block outputs before the final norm, each [B, 1 + N*T, D]
m.forward_spatial_attention(x)              # last block's spatial attention probs [B*T, heads, 1+N, 1+N]
m.set_grad_checkpointing(True); m.no_weight_decay(); m.reset_head(n); m.forward_head(tokens); m.embed_dim; m.cfg
```
Any input size and frame count works (positional/temporal tables nearest-resized as the official code does).
``ReferenceEndoFM`` (``core_model.models.reference``) is the naive official code path, used by tests and the
benchmark only.
"""

from core_model.models.config import (
    DEFAULT_PREPROCESS,
    MODEL_CONFIGS,
    POLYPDIAG_PREPROCESS,
    EndoFMConfig,
    get_config,
)
from core_model.models.endofm import EndoFM
from core_model.models.factory import create_model, list_models

__all__ = [
    "DEFAULT_PREPROCESS",
    "MODEL_CONFIGS",
    "POLYPDIAG_PREPROCESS",
    "EndoFM",
    "EndoFMConfig",
    "create_model",
    "get_config",
    "list_models",
]
