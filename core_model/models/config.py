"""Typed configuration of the Endo-FM backbone and the named sizes.

``EndoFMConfig`` holds only what shapes the network; the preprocessing a model expects (mean/std, frames, size,
sampling stride) travels with its weights in ``core_model.checkpoint.ModelMeta``. ``DEFAULT_PREPROCESS`` is what
the official pre-training used (ImageNet mean/std on RGB in [0, 1], 8 frames at a sampling rate of 32).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core_model.contract import ENDOFM_MEAN, ENDOFM_STD, IMAGENET_MEAN, IMAGENET_STD, unknown_fields

__all__ = ["DEFAULT_PREPROCESS", "MODEL_CONFIGS", "POLYPDIAG_PREPROCESS", "EndoFMConfig", "get_config"]


@dataclass(frozen=True)
class EndoFMConfig:
    """TimeSformer with divided space-time attention (reference §1.1). Defaults are the official ViT-B/16.

    ``img_size`` and ``num_frames`` size the positional and temporal tables; any other input size or frame count
    works at run time (the tables are nearest-resized exactly as the official code does).
    """

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_frames: int = 8
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    norm_eps: float = 1e-6
    num_classes: int = 0  # 0: no head (as every Endo-FM builder, `no_head=True`); task heads live elsewhere
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "num_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.img_size < self.patch_size:
            raise ValueError(f"img_size {self.img_size} is smaller than patch_size {self.patch_size}")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def grid_size(self) -> int:
        """Side of the square patch grid the positional table is built for (14 for 224/16)."""
        return self.img_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EndoFMConfig:
        """Build from a dict, refusing unknown fields (a typo must not be silently ignored)."""
        cls._refuse_unknown(d)
        return cls(**d)

    def replace(self, **overrides: Any) -> EndoFMConfig:
        self._refuse_unknown(overrides)
        return dataclasses.replace(self, **overrides)

    @classmethod
    def _refuse_unknown(cls, given: Any) -> None:
        unknown = unknown_fields(cls, given)
        if unknown:
            known = sorted(f.name for f in dataclasses.fields(cls))
            raise ValueError(f"unknown EndoFMConfig field(s) {unknown}; known fields: {known}")


MODEL_CONFIGS: dict[str, EndoFMConfig] = {
    # the official Endo-FM backbone: 121,258,752 parameters
    "endofm_base": EndoFMConfig(),
    "endofm_small": EndoFMConfig(embed_dim=384, depth=12, num_heads=6),
    # CPU / demo size, meant for 112-px input (a 7x7 patch grid)
    "endofm_tiny": EndoFMConfig(embed_dim=192, depth=6, num_heads=3, img_size=112),
}


def get_config(name: str, **overrides: Any) -> EndoFMConfig:
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name].replace(**overrides) if overrides else MODEL_CONFIGS[name]


# Official pre-training (reference §3.3): ImageNet statistics, DATA.SAMPLING_RATE 32.
DEFAULT_PREPROCESS: dict[str, Any] = {
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "frame_stride": 32,
}
# Official PolypDiag fine-tuning (reference §5.1): config defaults 0.45 / 0.225.
POLYPDIAG_PREPROCESS: dict[str, Any] = {
    "mean": list(ENDOFM_MEAN),
    "std": list(ENDOFM_STD),
    "frame_stride": 32,
}
