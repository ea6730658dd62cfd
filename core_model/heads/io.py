"""Task models on disk: the checkpoint module's model directory with the heads' configs in ``meta.heads``.

```python
save_task_model("model/", model, meta)          # meta.heads is rewritten from the model's heads
model, meta = load_task_model("model/", device=None)
model = build_task_model(meta)                  # fresh weights, the architecture ``meta`` describes
```
State-dict keys are ``backbone.<official key>`` and ``heads.<task>.<...>``; loading checks the exact key set and the
shapes and raises ``CheckpointError`` naming what does not fit (nothing is ever left randomly initialised).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from core_model.checkpoint import CheckpointError, ModelMeta, load_model_dir, save_model_dir
from core_model.heads.task_model import EndoFMTaskModel, build_head
from core_model.models import EndoFM

__all__ = ["build_task_model", "load_task_model", "save_task_model"]


def build_task_model(meta: ModelMeta) -> EndoFMTaskModel:
    """Backbone + heads as ``meta`` describes them (weights freshly initialised). ``ValueError`` if ``meta``
    has no heads (a bare backbone, e.g. a converted ``endo_fm.pth``, cannot predict anything yet)."""
    cfg = meta.config
    if not meta.heads:
        raise ValueError(
            f"model {meta.arch_name!r} has no task heads (a bare backbone): fine-tune it before predicting"
        )
    heads = {
        task: build_head(task, head_cfg, cfg.embed_dim, cfg.patch_size, cfg.depth)
        for task, head_cfg in meta.heads.items()
    }
    return EndoFMTaskModel(EndoFM(cfg), heads)


def save_task_model(model_dir: str | os.PathLike, model: EndoFMTaskModel, meta: ModelMeta) -> Path:
    """Write ``model`` into ``model_dir`` with ``meta``; ``meta.heads`` is replaced by the model's head configs
    and ``meta.arch["config"]`` by the backbone's config (the metadata always describes the weights saved)."""
    arch = dict(meta.arch)
    arch["config"] = model.backbone.cfg.replace(grad_checkpointing=False).to_dict()  # a training-time choice
    heads = {task: head.config() for task, head in model.heads.items()}
    return save_model_dir(model_dir, model, dataclasses.replace(meta, arch=arch, heads=heads))


@contextlib.contextmanager
def _no_weight_init() -> Iterator[None]:
    """Modules built inside skip ``torch.nn.init``'s random initialisation (their tensors are left as allocated).
    Only for a model whose every parameter is overwritten right after by a strict ``load_state_dict``: the
    backbone's truncated-normal init alone cost ~1.1 s of ``endofm predict``'s start-up with the tiny demo model
    (and grows with the model), for weights thrown away."""
    import torch.nn.init as init

    names = [
        n for n in vars(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))
    ]
    saved = {n: getattr(init, n) for n in names}

    def keep(tensor, *args, **kwargs):
        return tensor

    try:
        for n in names:
            setattr(init, n, keep)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def load_task_model(
    model_dir: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[EndoFMTaskModel, ModelMeta]:
    """Load a task model (in eval mode, on ``device``; None: CPU) and its metadata. Bad directories, metadata or
    weights raise ``CheckpointError`` with the directory and the reason."""
    state, meta = load_model_dir(model_dir)
    try:
        with _no_weight_init():  # every weight comes from the file (the strict load below checks it)
            model = build_task_model(meta)
    except ValueError as exc:
        raise CheckpointError(f"{model_dir}: {exc}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{model_dir}: weights do not match the heads in model.json: "
            f"missing {_show(missing)}, unexpected {_show(unexpected)}"
        )
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise CheckpointError(f"{model_dir}: weights do not fit model.json: " + "; ".join(bad[:8]))
    model.load_state_dict(state, strict=True)
    model.to(torch.device(device) if device is not None else torch.device("cpu")).eval()
    return model, meta


def _show(keys: list[str]) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - 6} more)" if len(keys) > 6 else ""
    return ", ".join(keys[:6]) + more
