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

import dataclasses
import logging
from pathlib import Path
from typing import Any

from core_model.finetune.config import FinetuneConfig

log = logging.getLogger(__name__)

HEAD_CLASSES = {"classification": "video", "segmentation": "mask", "detection": "box"}


def _head_cfg(task: str, classes: dict[str, tuple[str, ...]], cfg: FinetuneConfig) -> dict[str, Any]:
    d = dict(cfg.head_config.get(task, {}))
    d["classes"] = list(classes[HEAD_CLASSES[task]])
    return d


def build_task_model(cfg: FinetuneConfig, classes: dict[str, tuple[str, ...]], parent=None):
    """-> (``EndoFMTaskModel``, info dict: ``arch``, ``source``, ``heads_kept``, ``heads_new``).

    ``parent``: the :class:`core_model.loading.LoadedModel` of ``cfg.init`` if the caller loaded it already
    (the run does, to inherit its data config); otherwise ``cfg.init`` is loaded here, once, by ``load_model``."""
    from core_model.contract import CheckpointError
    from core_model.heads import EndoFMTaskModel, build_head
    from core_model.loading import load_model
    from core_model.models import EndoFM, create_model

    info: dict[str, Any] = {"source": cfg.init or "", "heads_kept": [], "heads_new": []}
    old_heads: dict[str, Any] = {}
    old_modules: dict[str, Any] = {}
    if cfg.init:
        if parent is None:
            parent = load_model(cfg.init, arch=cfg.arch if cfg.arch_explicit else None)
        pm = parent.model
        backbone_src = pm.backbone if hasattr(pm, "backbone") else pm
        bcfg = backbone_src.cfg.replace(drop_path_rate=cfg.drop_path, grad_checkpointing=False)
        backbone = EndoFM(bcfg)
        backbone.load_state_dict(backbone_src.state_dict(), strict=True)
        if hasattr(pm, "heads"):
            old_heads = dict(parent.meta.heads)
            old_modules = dict(pm.heads.items())
        info["arch"] = parent.meta.arch_name
        info["kind"] = parent.kind
    else:
        backbone = create_model(cfg.arch, drop_path_rate=cfg.drop_path)
        info["arch"] = cfg.arch
    d, p = backbone.cfg.embed_dim, backbone.cfg.patch_size
    depth = backbone.cfg.depth
    heads = {}
    for task in cfg.tasks:
        wanted = _head_cfg(task, classes, cfg)
        old = old_heads.get(task)
        if old is not None and list(old.get("classes", [])) == wanted["classes"] and task in old_modules:
            head = build_head(task, old, d, p, depth)
            missing, unexpected = head.load_state_dict(old_modules[task].state_dict(), strict=False)
            if missing or unexpected:
                raise CheckpointError(
                    f"{cfg.init}: head {task!r} weights do not fit its config "
                    f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
                )
            info["heads_kept"].append(task)
        else:
            head = build_head(task, wanted, d, p, depth)
            info["heads_new"].append(task)
        heads[task] = head
    weights = {t: float(cfg.loss_weights.get(t, 1.0)) for t in cfg.tasks}
    return EndoFMTaskModel(backbone, heads, task_weights=weights), info


# FinetuneConfig fields that make up the data config (what inheritance copies from the parent)
DATA_FIELDS = ("mean", "std", "num_frames", "img_size", "frame_stride", "window", "window_s", "eval_crop")


def data_config_of(cfg: FinetuneConfig):
    """The data config a model trained with ``cfg`` must be served with (what its evaluation used)."""
    from core_model.contract import DataConfig

    span = cfg.window == "linspace"
    return DataConfig(
        mean=cfg.mean,
        std=cfg.std,
        num_frames=cfg.num_frames,
        img_size=cfg.img_size,
        sampling="span" if span else "stride",
        frame_stride=cfg.frame_stride,
        span_s=cfg.window_s,
        clips="first" if span and tuple(cfg.tasks) == ("classification",) else "sliding",
        resize="short_side_corner" if cfg.augment.eval_crop == "short_side_corner" else "squash",
        protocol=cfg.preset or "default",
    )


def _cfg_data_values(cfg: FinetuneConfig) -> dict[str, Any]:
    return {
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "num_frames": cfg.num_frames,
        "img_size": cfg.img_size,
        "frame_stride": cfg.frame_stride,
        "window": cfg.window,
        "window_s": cfg.window_s,
        "eval_crop": cfg.augment.eval_crop,
    }


def _parent_data_values(data) -> dict[str, Any]:
    return {
        "mean": list(data.mean),
        "std": list(data.std),
        "num_frames": data.num_frames,
        "img_size": data.img_size[0],
        "frame_stride": data.frame_stride,
        "window": "linspace" if data.sampling == "span" else "stride",
        "window_s": data.span_s,
        "eval_crop": "short_side_corner" if data.resize == "short_side_corner" else "resize",
    }


def inherit_data_config(cfg: FinetuneConfig, parent) -> tuple[FinetuneConfig, dict[str, Any]]:
    """The child is fed as its parent (``parent``: a ``LoadedModel``) unless a field was set explicitly
    (``cfg.data_overrides``: field -> why, filled by the CLI from a preset or a flag). Returns the config to train
    with and the lineage record for ``model.json``: what was inherited and what was overridden, parent's and
    child's values and the reason."""
    pv = _parent_data_values(parent.meta.data)
    cv = _cfg_data_values(cfg)
    explicit = dict(cfg.data_overrides)
    inherited, overrides, changes = [], {}, {}
    for k in DATA_FIELDS:
        if k in explicit or not cfg.inherit_data:
            if pv[k] != cv[k]:
                reason = explicit.get(k) or "inheritance switched off (inherit_data=false)"
                overrides[k] = {"parent": pv[k], "child": cv[k], "reason": reason}
        else:
            inherited.append(k)
            if pv[k] != cv[k]:
                changes[k] = pv[k]
    new = cfg
    if changes:
        aug = changes.pop("eval_crop", None)
        new = cfg.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})
        if aug is not None:
            new = new.replace(augment=dataclasses.replace(new.augment, eval_crop=aug))
    lineage = {
        "parent": str(cfg.init),
        "parent_arch": parent.meta.arch_name,
        "parent_data": parent.meta.data.to_dict(),
        "inherited": inherited,
        "overrides": overrides,
    }
    return new, lineage


def inherit_head_classes(
    tasks: tuple[str, ...],
    classes: dict[str, tuple[str, ...]],
    parent,
    lineage: dict[str, Any],
) -> dict[str, tuple[str, ...]]:
    """Keep the parent's class list for a task (so its head and its class order carry over) when the training
    labels use no class the parent lacks; otherwise the labels' classes, recorded in ``lineage["heads"]``."""
    out = dict(classes)
    record: dict[str, Any] = {}
    for task in tasks:
        key = HEAD_CLASSES[task]
        mine = tuple(classes.get(key) or ())
        theirs = tuple(parent.meta.classes(task))
        if not theirs:
            record[task] = {
                "inherited": False,
                "classes": list(mine),
                "reason": "the parent has no such head",
            }
        elif set(mine) <= set(theirs):
            out[key] = theirs
            record[task] = {"inherited": True, "classes": list(theirs)}
        else:
            extra = sorted(set(mine) - set(theirs))
            record[task] = {
                "inherited": False,
                "classes": list(mine),
                "parent_classes": list(theirs),
                "reason": f"the training labels have classes the parent's head lacks: {extra}",
            }
    lineage["heads"] = record
    return out


def export_model_dir(
    model,
    cfg: FinetuneConfig,
    classes,
    out: Path,
    provenance: dict[str, Any],
    fp16: bool = False,
    lineage: dict[str, Any] | None = None,
    operating_points: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` (an ``EndoFMTaskModel``, adapters merged) as a model directory the ``Predictor`` loads."""
    from core_model.checkpoint import ModelMeta, save_model_dir

    bcfg = model.backbone.cfg.replace(grad_checkpointing=False)
    meta = ModelMeta.for_config(
        bcfg,
        name=str(provenance.get("arch") or cfg.arch),
        preprocess=data_config_of(cfg),
        heads={t: h.config() for t, h in model.heads.items()},
        provenance=provenance,
    )
    meta.lineage = dict(lineage or {})
    meta.operating_points = dict(operating_points or {})
    return Path(save_model_dir(out, model, meta, fp16=fp16))


def load_task_model_dir(path: str | Path):
    """A model directory -> (``EndoFMTaskModel`` in eval mode on the CPU, float32, ``ModelMeta``). Every tensor is
    checked, and a bare backbone (no heads) refused, by :func:`core_model.heads.load_task_model`."""
    from core_model.heads import load_task_model

    model, meta = load_task_model(path)
    return model.float().eval(), meta
