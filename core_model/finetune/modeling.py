"""Build the task model a fine-tuning run starts from, and export the result as a model directory.

Starting points (``FinetuneConfig.init``):

* one of our model directories: its backbone (its own ``EndoFMConfig``), and each of its heads whose task and
  classes match what the manifest asks for (the other heads start fresh) - so a hospital's model fine-tuned again
  keeps what it learnt;
* any checkpoint the converter reads (``endo_fm.pth``, the fine-tuned PolypDiag file, a flat state dict): the
  backbone of ``cfg.arch``; PolypDiag's linear classifier seeds a two-class classification head;
* nothing: ``cfg.arch`` with random weights (for tests and the demo's first stage).

Every load goes through ``core_model.checkpoint`` with exact key checks; nothing is silently left random.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from core_model.finetune.config import FinetuneConfig

log = logging.getLogger(__name__)

HEAD_CLASSES = {"classification": "video", "segmentation": "mask", "detection": "box"}


def _head_cfg(task: str, classes: dict[str, tuple[str, ...]], cfg: FinetuneConfig) -> dict[str, Any]:
    d = dict(cfg.head_config.get(task, {}))
    d["classes"] = list(classes[HEAD_CLASSES[task]])
    return d


def build_task_model(cfg: FinetuneConfig, classes: dict[str, tuple[str, ...]]):
    """-> (``EndoFMTaskModel``, info dict: ``arch``, ``source``, ``heads_kept``, ``heads_new``)."""
    from core_model.checkpoint import CheckpointError, load_backbone_state_dict, load_model_dir
    from core_model.heads import EndoFMTaskModel, build_head
    from core_model.models import EndoFM, create_model

    info: dict[str, Any] = {"source": cfg.init or "", "heads_kept": [], "heads_new": []}
    old_heads: dict[str, Any] = {}
    extra: dict[str, torch.Tensor] = {}
    classifier = None
    if cfg.init and Path(cfg.init).is_dir():
        _, meta = load_model_dir(cfg.init)
        bcfg = meta.config.replace(drop_path_rate=cfg.drop_path, grad_checkpointing=False)
        backbone = EndoFM(bcfg)
        sd = load_backbone_state_dict(cfg.init, expected_keys=list(backbone.state_dict()))
        backbone.load_state_dict(dict(sd), strict=True)
        extra = dict(sd.extra or {})
        old_heads = dict(meta.heads)
        info["arch"] = meta.arch_name
    elif cfg.init:
        if not Path(cfg.init).exists():
            raise CheckpointError(f"{cfg.init}: no such model directory or checkpoint")
        backbone = create_model(cfg.arch, checkpoint=cfg.init, drop_path_rate=cfg.drop_path)
        sd = load_backbone_state_dict(cfg.init, expected_keys=list(backbone.state_dict()))
        classifier = sd.classifier
        info["arch"] = cfg.arch
    else:
        backbone = create_model(cfg.arch, drop_path_rate=cfg.drop_path)
        info["arch"] = cfg.arch
    d, p = backbone.cfg.embed_dim, backbone.cfg.patch_size
    depth = backbone.cfg.depth
    heads = {}
    for task in cfg.tasks:
        wanted = _head_cfg(task, classes, cfg)
        old = old_heads.get(task)
        if old is not None and list(old.get("classes", [])) == wanted["classes"]:
            head = build_head(task, old, d, p, depth)
            prefix = f"heads.{task}."
            state = {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}
            missing, unexpected = head.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise CheckpointError(
                    f"{cfg.init}: head {task!r} weights do not fit its config "
                    f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
                )
            info["heads_kept"].append(task)
        else:
            head = build_head(task, wanted, d, p, depth)
            if task == "classification" and classifier is not None:
                w, b = classifier["weight"], classifier["bias"]
                if tuple(w.shape) == tuple(head.linear.weight.shape):
                    with torch.no_grad():
                        head.linear.weight.copy_(w)
                        head.linear.bias.copy_(b)
                    info["heads_kept"].append(task)
                    heads[task] = head
                    continue
            info["heads_new"].append(task)
        heads[task] = head
    weights = {t: float(cfg.loss_weights.get(t, 1.0)) for t in cfg.tasks}
    return EndoFMTaskModel(backbone, heads, task_weights=weights), info


def preprocess_of(cfg: FinetuneConfig) -> dict[str, Any]:
    return {
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "num_frames": cfg.num_frames,
        "img_size": cfg.img_size,
        "frame_stride": cfg.frame_stride
        if cfg.window == "stride"
        else max(1, round(cfg.window_s * 30 / cfg.num_frames)),
        "clip_stride": None,
    }


def export_model_dir(
    model, cfg: FinetuneConfig, classes, out: Path, provenance: dict[str, Any], fp16: bool = False
) -> Path:
    """Save ``model`` (an ``EndoFMTaskModel``, adapters merged) as a model directory the ``Predictor`` loads."""
    from core_model.checkpoint import ModelMeta, save_model_dir

    bcfg = model.backbone.cfg.replace(grad_checkpointing=False)
    meta = ModelMeta.for_config(
        bcfg,
        name=str(provenance.get("arch") or cfg.arch),
        preprocess=preprocess_of(cfg),
        heads={t: h.config() for t, h in model.heads.items()},
        provenance=provenance,
    )
    return Path(save_model_dir(out, model, meta, fp16=fp16))


def load_task_model_dir(path: str | Path):
    """A model directory -> (``EndoFMTaskModel`` in eval mode on the CPU, float32, ``ModelMeta``). Every tensor is
    checked, and a bare backbone (no heads) refused, by :func:`core_model.heads.load_task_model`."""
    from core_model.heads import load_task_model

    model, meta = load_task_model(path)
    return model.float().eval(), meta
