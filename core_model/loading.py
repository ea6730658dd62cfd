"""``load_model(source)``: the one door to a model, whatever the file.

```python
from core_model.loading import load_model
lm = load_model("model_dir/" | "endo_fm.pth" | "polypdiag.pth" | "run/checkpoint.pth" | "x.safetensors")
lm.model   # EndoFMTaskModel (backbone + heads) when the source has heads, else the EndoFM backbone; eval, CPU, fp32
lm.meta    # core_model.contract.ModelMeta: architecture, data config, heads, operating points, provenance
lm.kind    # "model-dir" | "official-pretrain" | "official-student" | "polypdiag" | "flat" | "safetensors" | "run"
```

Sources:

* **one of our model directories** (``model.safetensors`` + ``model.json``): its own metadata, every tensor checked;
* **an official pre-training checkpoint** (``endo_fm.pth``, ``checkpoint*.pth``), a flat backbone state dict or a
  ``.safetensors`` file: the architecture is read from the tensor shapes (width, depth, patch, size, frames; the head
  count from the named size of that width and depth); the data config is the official pre-training one (ImageNet
  mean/std, 8 frames 32 apart, 224 px);
* **an official fine-tuned PolypDiag checkpoint**: as above plus its linear classifier as a ``classification`` head
  (``normal``, ``abnormal``) and the official PolypDiag protocol as the data config
  (:data:`core_model.contract.POLYPDIAG_OFFICIAL`) with the official per-video call (argmax of the one clip);
* **our fine-tuning run checkpoints** (``checkpoint.pth`` / ``best.pth`` of ``endofm finetune``): the model
  rebuilt from the run's saved config and the task weights.

``arch`` (a named size) is checked against the weights instead of trusted: a mismatch raises
:class:`~core_model.contract.CheckpointError` naming both. Anything else (TransUNet ``cvc.pth``, STFT ``kumc.pth``,
a file that is no checkpoint) is refused with the converter's reason.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core_model.contract import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    POLYPDIAG_OFFICIAL,
    CheckpointError,
    DataConfig,
    ModelMeta,
    OperatingPoint,
)

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "infer_config", "load_model", "official_pretrain_data"]

POLYPDIAG_CLASSES = ["normal", "abnormal"]  # label 1 (the F1 positive class) is the abnormal video


@dataclass
class LoadedModel:
    model: nn.Module
    meta: ModelMeta
    kind: str
    path: str

    @property
    def has_heads(self) -> bool:
        return hasattr(self.model, "heads") and len(getattr(self.model, "heads", {})) > 0


def official_pretrain_data(num_frames: int = 8, img_size: int = 224) -> DataConfig:
    """What the official pre-training fed the backbone (reference §3.3): ImageNet statistics, 32 frames apart."""
    return DataConfig(
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_frames=num_frames,
        img_size=img_size,
        frame_stride=32,
        protocol="endofm-pretrain",
    )


def infer_config(state: Any, num_heads: int | None = None, model: str | None = None):
    """-> ``(EndoFMConfig, name)`` from backbone tensor shapes (+ the head count from a named size of the same
    width and depth, or ``num_heads``). ``model``: a named size the weights must match."""
    from core_model.models.config import MODEL_CONFIGS, EndoFMConfig

    try:
        dim = int(state["cls_token"].shape[-1])
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        w = state["patch_embed.proj.weight"]  # [D, C, p, p]
        grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
        hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
        num_frames = int(state["time_embed"].shape[1])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"the weights do not reveal an Endo-FM architecture (no {exc})") from None
    patch, in_chans = int(w.shape[-1]), int(w.shape[1])
    fields = dict(
        embed_dim=dim,
        depth=depth,
        patch_size=patch,
        in_chans=in_chans,
        img_size=grid * patch,
        num_frames=num_frames,
        mlp_ratio=hidden / dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )
    candidates = [model] if model else list(MODEL_CONFIGS)
    for name in candidates:
        if name not in MODEL_CONFIGS:
            raise ValueError(f"unknown model {name!r}; available: {sorted(MODEL_CONFIGS)}")
        base = MODEL_CONFIGS[name]
        if (base.embed_dim, base.depth) == (dim, depth):
            heads = num_heads or base.num_heads
            cfg = base.replace(**fields, num_heads=heads)
            return cfg, name if cfg == base else f"{name}-variant"
        if model:
            found = [n for n, c in MODEL_CONFIGS.items() if (c.embed_dim, c.depth) == (dim, depth)]
            raise CheckpointError(
                f"the weights are width {dim}, depth {depth}"
                + (f" ({found[0]})" if found else "")
                + f", but --arch {name} is {base.embed_dim}/{base.depth}: leave --arch out to use the weights' own"
            )
    same_width = [n for n, c in MODEL_CONFIGS.items() if c.embed_dim == dim]
    if not num_heads and len(same_width) == 1:  # a shallower/deeper variant of a named size: its head count
        name = same_width[0]
        return MODEL_CONFIGS[name].replace(**fields), f"{name}-variant"
    if not num_heads:
        raise CheckpointError(
            f"width {dim} / depth {depth} matches no named size, and the head count cannot be read from the "
            "weights: pass --num-heads"
        )
    return EndoFMConfig(**fields, num_heads=num_heads), "custom"


def _load_run_checkpoint(path: Path, obj: dict) -> LoadedModel:
    from core_model.finetune.config import FinetuneConfig
    from core_model.finetune.modeling import data_config_of
    from core_model.heads import EndoFMTaskModel, build_head
    from core_model.models.config import EndoFMConfig
    from core_model.models.endofm import EndoFM

    cfg = FinetuneConfig.from_dict(obj["config"])
    if not obj.get("backbone_config") or not obj.get("head_configs"):
        raise CheckpointError(
            f"{path}: a fine-tuning checkpoint from before the model contract (no backbone/head configs): "
            "use the run's exported model directory (model/)"
        )
    bcfg = EndoFMConfig.from_dict(obj["backbone_config"])
    heads = {
        t: build_head(t, hc, bcfg.embed_dim, bcfg.patch_size, bcfg.depth)
        for t, hc in obj["head_configs"].items()
    }
    model = EndoFMTaskModel(EndoFM(bcfg), heads)
    state = obj.get("model") or obj.get("model_state")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: run checkpoint weights do not fit its config: {exc}") from exc
    meta = ModelMeta.for_config(
        model.backbone.cfg,
        str(obj.get("arch") or cfg.arch),
        data_config_of(cfg),
        {t: h.config() for t, h in model.heads.items()},
        {"kind": "finetune-checkpoint", "source": str(path), "epoch": obj.get("epoch")},
    )
    return LoadedModel(model.float().eval(), meta, "run", str(path))


def load_model(
    source: str | os.PathLike,
    *,
    arch: str | None = None,
    num_heads: int | None = None,
    heads: bool = True,
) -> LoadedModel:
    """Load any model source (see the module docstring). ``heads=False``: the backbone only."""
    from core_model.checkpoint import load_backbone_state_dict, safe_torch_load
    from core_model.models.endofm import EndoFM

    p = Path(source)
    if not p.exists():
        raise CheckpointError(f"{p}: no such model directory or checkpoint")
    if p.is_dir():
        from core_model.checkpoint import load_model_dir

        if heads:
            from core_model.heads.io import load_task_model

            try:
                model, meta = load_task_model(p, device="cpu")
                _check_arch(meta, arch, p)
                return LoadedModel(model.float().eval(), meta, "model-dir", str(p))
            except CheckpointError as exc:
                if "no heads" not in str(exc) and "bare backbone" not in str(exc):
                    raise
        state, meta = load_model_dir(p)
        _check_arch(meta, arch, p)
        backbone = EndoFM(meta.config)
        bsd = load_backbone_state_dict(p, expected_keys=list(backbone.state_dict()))
        backbone.load_state_dict(dict(bsd), strict=True)
        return LoadedModel(backbone.float().eval(), meta, "model-dir", str(p))

    if p.suffix in (".pth", ".pt", ".tar") or p.name.endswith(".pth.tar"):
        obj = safe_torch_load(p)
        if isinstance(obj, dict) and "config" in obj and ("model" in obj or "model_state" in obj):
            if isinstance(obj.get("config"), dict) and "manifest" in obj["config"]:
                return _load_run_checkpoint(p, obj)
        sd = load_backbone_state_dict(obj)
        sd.path = str(p)
    else:
        sd = load_backbone_state_dict(p)
    try:
        cfg, name = infer_config(sd, num_heads, arch)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    backbone = EndoFM(cfg)
    try:
        backbone.load_state_dict(dict(sd), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: tensor shapes do not form one {name} backbone: {exc}") from exc
    provenance = {"source": str(p.resolve()), "source_layout": sd.source}
    if sd.classifier is not None and heads:
        from core_model.heads import EndoFMTaskModel, build_head

        n = int(sd.classifier["weight"].shape[0])
        classes = POLYPDIAG_CLASSES if n == 2 else [f"class_{i}" for i in range(n)]
        hcfg = {"classes": classes, "multi_label": False, "dropout": 0.0}
        head = build_head("classification", hcfg, cfg.embed_dim, cfg.patch_size, cfg.depth)
        with torch.no_grad():
            head.linear.weight.copy_(sd.classifier["weight"])
            head.linear.bias.copy_(sd.classifier["bias"])
        model = EndoFMTaskModel(backbone, {"classification": head})
        data = POLYPDIAG_OFFICIAL.replace(num_frames=cfg.num_frames, img_size=cfg.img_size)
        meta = ModelMeta.for_config(cfg, name, data, {"classification": hcfg}, provenance)
        meta.operating_points["classification"] = OperatingPoint(
            positive=classes[-1], rule="mean", threshold=0.5
        )  # the official per-video call: argmax of the one clip's two logits
        return LoadedModel(model.float().eval(), meta, sd.source, str(p))
    meta = ModelMeta.for_config(
        cfg, name, official_pretrain_data(cfg.num_frames, cfg.img_size), {}, provenance
    )
    return LoadedModel(backbone.float().eval(), meta, sd.source, str(p))


def _check_arch(meta: ModelMeta, arch: str | None, where: Path) -> None:
    if not arch:
        return
    from core_model.models.config import MODEL_CONFIGS

    base = MODEL_CONFIGS.get(arch)
    cfg = meta.config
    if base is None:
        raise ValueError(f"unknown model {arch!r}; available: {sorted(MODEL_CONFIGS)}")
    if (base.embed_dim, base.depth) != (cfg.embed_dim, cfg.depth):
        raise CheckpointError(
            f"{where}: holds {meta.arch_name} (width {cfg.embed_dim}, depth {cfg.depth}), not {arch}: "
            "leave --arch out to use the model's own"
        )
