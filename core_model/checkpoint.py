"""Checkpoints: one converter for every Endo-FM weight layout, a safe loader, and the project's model directory.

```python
from core_model.checkpoint import load_backbone_state_dict, CheckpointError, save_model_dir, load_model_dir, ModelMeta
sd = load_backbone_state_dict("endo_fm.pth")           # -> BackboneStateDict (a dict of official backbone keys)
model.load_state_dict(sd, strict=True)
sd.source      # "official-pretrain" | "official-student" | "flat" | "polypdiag" | "model-dir" | "safetensors"
sd.classifier  # PolypDiag's linear classifier {"weight": [C, D], "bias": [C]} (None for other layouts)
sd.extra       # non-backbone tensors that were set aside: DINO head ("head.mlp.0.weight", ...) or a model
               # directory's task heads ("heads.classification...."), by their names after the prefix strip
sd.meta        # ModelMeta when read from one of our model directories
save_model_dir("model/", module, meta)                  # model.safetensors (+ fp16=True) + model.json
state, meta = load_model_dir("model/")
```

Layouts read (reference §2): the official pre-training dict (``teacher`` preferred, else ``student``; keys
``backbone.`` or ``module.backbone.``; DINO ``head.*`` keys dropped), a ``model_state`` wrapper, a flat backbone
state dict (with or without ``backbone.``/``module.``), the fine-tuned PolypDiag file (``backbone_state_dict`` with
``module.`` plus the ``state_dict`` linear classifier), a ``.safetensors`` file and our model directory. The key set is
checked exactly (against ``expected_keys`` or, without it, the official key set for the depth found) and a mismatch
raises ``CheckpointError`` naming the missing and unexpected keys: weights are never silently left random. The paper's
``cvc.pth`` (TransUNet) and ``kumc.pth`` (FCOS/STFT) are refused as different architectures.

Pickles are read with ``torch.load(weights_only=True)``; besides tensors and containers only ``argparse.Namespace``
and NumPy's scalar/dtype reconstructors (under ``numpy.core`` and ``numpy._core``) are allowed. Any other global is
refused and named, and nothing in the file is executed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core_model.atomic import atomic_write, atomic_write_text
from core_model.contract import (
    META_FILE,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    WEIGHTS_FILE,
    CheckpointError,
    ModelMeta,
    model_json_object,
)
from core_model.models.config import EndoFMConfig

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "BackboneStateDict",
    "CheckpointError",
    "ModelMeta",
    "expected_backbone_keys",
    "load_backbone_state_dict",
    "load_model_dir",
    "safe_torch_load",
    "save_model_dir",
]


_BLOCK_SUFFIXES = tuple(
    f"{m}.{p}"
    for m in (
        "norm1", "attn.qkv", "attn.proj", "temporal_norm1", "temporal_attn.qkv", "temporal_attn.proj",
        "temporal_fc", "norm2", "mlp.fc1", "mlp.fc2",
    )
    for p in ("weight", "bias")
)  # fmt: skip
_TOP_KEYS = ("cls_token", "pos_embed", "time_embed", "patch_embed.proj.weight", "patch_embed.proj.bias")
_NORM_KEYS = ("norm.weight", "norm.bias")


def expected_backbone_keys(depth: int, head: bool = False) -> list[str]:
    """The official backbone state-dict keys (reference §2.1) for ``depth`` blocks (+ ``head.*`` if ``head``)."""
    keys = (
        list(_TOP_KEYS)
        + [f"blocks.{i}.{s}" for i in range(depth) for s in _BLOCK_SUFFIXES]
        + list(_NORM_KEYS)
    )
    return keys + (["head.weight", "head.bias"] if head else [])


class BackboneStateDict(dict):
    """Backbone tensors by official key name, plus what the converter learned about the file."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], source: str, path: str | None = None) -> None:
        super().__init__(tensors)
        self.source = source
        self.path = path
        self.classifier: dict[str, torch.Tensor] | None = None
        self.extra: dict[str, torch.Tensor] = {}
        self.meta: ModelMeta | None = None


# --------------------------------------------------------------------------------------------- safe loading
def _allowed_globals() -> list[Any]:
    from numpy.dtypes import BoolDType, Float16DType, Float32DType, Float64DType, Int32DType, Int64DType

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return [
        argparse.Namespace,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *(BoolDType, Float16DType, Float32DType, Float64DType, Int32DType, Int64DType),
    ]


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with the harmless globals above; a clear ``CheckpointError`` otherwise."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory without {META_FILE} (not one of our model directories)")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"{p}: the file is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # every failure becomes one clear message
        text = str(exc)
        m = re.search(r"GLOBAL ([\w.]+)", text)
        if m:
            raise CheckpointError(
                f"{p}: refused to load: the pickle references {m.group(1)!r}, which is not an allowed class "
                "(only tensors, containers, argparse.Namespace and NumPy scalars are accepted; nothing was executed)"
            ) from None
        if any(
            s in text for s in ("central directory", "failed reading", "file not found", "EOF", "truncated")
        ) or (isinstance(exc, EOFError)):
            raise CheckpointError(
                f"{p}: truncated or corrupt checkpoint ({size} bytes; {type(exc).__name__}: {text.splitlines()[0]})"
            ) from exc
        first = text.splitlines()[0] if text else type(exc).__name__
        if "weights_only" in text or "Weights only" in text:
            # never pass on PyTorch's advice to switch the weights-only guard off for a file we refused
            first = "it holds objects other than tensors and plain containers; nothing was executed"
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"
        ) from exc


# --------------------------------------------------------------------------------------------- the converter
def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _strip(keys_to_tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in keys_to_tensors.items()}


def _refuse_foreign(where: str, obj: Mapping[str, Any]) -> None:
    keys = list(obj.keys())
    if any(
        k.startswith(("transformer.embeddings.hybrid_model", "transformer.encoder.layer")) for k in keys
    ) or (
        any(k.startswith("segmentation_head.") for k in keys) and any(k.startswith("decoder.") for k in keys)
    ):
        raise CheckpointError(
            f"{where}: this is a TransUNet segmentation model (the paper's cvc.pth: keys "
            "'transformer.embeddings.hybrid_model...', an R50 stem and its own embeddings), a different architecture "
            "from the Endo-FM backbone; it cannot be loaded here. Use the pre-training checkpoint (endo_fm.pth)."
        )
    model = obj.get("model") if isinstance(obj.get("model"), Mapping) else obj
    mkeys = [k[7:] if k.startswith("module.") else k for k in model]
    if any(k.startswith("backbone.body.") for k in mkeys) or any(k.startswith("rpn.") for k in mkeys):
        raise CheckpointError(
            f"{where}: this is an FCOS/STFT detection model (the paper's kumc.pth: keys 'backbone.body.', "
            "'backbone.fpn.', 'rpn.'), a different architecture from the Endo-FM backbone; it cannot be loaded "
            "here. Use the pre-training checkpoint (endo_fm.pth)."
        )


def _unwrap(where: str, obj: Any) -> tuple[dict[str, torch.Tensor], str, dict[str, torch.Tensor] | None]:
    """The raw tensor dict inside a checkpoint object, the layout name, and PolypDiag's classifier."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where}: expected a dict of tensors, found {type(obj).__name__}")
    _refuse_foreign(where, obj)
    if "backbone_state_dict" in obj:  # fine-tuned PolypDiag (eval_finetune.py checkpoint.pth.tar)
        sd = obj["backbone_state_dict"]
        classifier = None
        cls_sd = obj.get("state_dict")
        if _is_tensor_dict(cls_sd):
            cls_sd = _strip(cls_sd, "module.")
            if set(cls_sd) != {"linear.weight", "linear.bias"}:
                raise CheckpointError(
                    f"{where}: PolypDiag 'state_dict' should hold the linear classifier "
                    f"(module.linear.weight/bias), found keys {sorted(cls_sd)[:6]}"
                )
            classifier = {"weight": cls_sd["linear.weight"], "bias": cls_sd["linear.bias"]}
        return _tensors(where, sd, "backbone_state_dict"), "polypdiag", classifier
    for key, source in (("teacher", "official-pretrain"), ("student", "official-student")):
        if key in obj and isinstance(obj[key], Mapping):
            return _tensors(where, obj[key], key), source, None
    if "model_state" in obj and isinstance(obj["model_state"], Mapping):
        return _tensors(where, obj["model_state"], "model_state"), "model_state", None
    for key in ("state_dict", "model"):
        if key in obj and _is_tensor_dict(obj[key]):
            return _tensors(where, obj[key], key), key, None
    non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise CheckpointError(
            f"{where}: unrecognised checkpoint layout: top-level keys {sorted(map(str, obj))[:10]} hold no "
            "'teacher'/'student'/'backbone_state_dict'/'model_state' weights and are not a flat state dict"
        )
    return dict(obj), "flat", None


def _tensors(where: str, sd: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{where}: '{what}' is a {type(sd).__name__}, not a dict of tensors")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: '{what}' holds non-tensor values under {bad[:5]}")
    if not sd:
        raise CheckpointError(f"{where}: '{what}' is empty")
    return dict(sd)


def _split_backbone(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Strip ``module.`` and ``backbone.``; set DINO/task heads aside. Returns (backbone, extra)."""
    if all(k.startswith("module.") for k in sd):
        sd = _strip(sd, "module.")
    if any(k.startswith("backbone.") for k in sd):
        backbone = {k[9:]: v for k, v in sd.items() if k.startswith("backbone.")}
        rest = {k: v for k, v in sd.items() if not k.startswith("backbone.")}
        extra = {k: v for k, v in rest.items() if k.startswith(("head.", "heads."))}
        # anything else stays with the backbone so the exact key check names it
        backbone.update({k: v for k, v in rest.items() if k not in extra})
        return backbone, extra
    return sd, {}


def _depth_of(keys: Iterable[str]) -> int:
    idx = [int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))]
    return max(idx) + 1 if idx else 0


def _prefix_hint(unexpected: list[str], expected: set[str]) -> str:
    for k in unexpected:
        for e in ("cls_token", "pos_embed", "norm.weight", "patch_embed.proj.weight"):
            if k.endswith("." + e) and e in expected:
                return f" (the keys look prefixed with {k[: -len(e)]!r}, a prefix this loader does not know)"
    return ""


def _check_keys(where: str, sd: Mapping[str, torch.Tensor], expected: Iterable[str]) -> None:
    exp = set(expected)
    missing = sorted(exp - set(sd))
    unexpected = sorted(set(sd) - exp)
    if missing or unexpected:

        def show(ks: list[str]) -> str:
            return "[]" if not ks else repr(ks[:12]) + (f" and {len(ks) - 12} more" if len(ks) > 12 else "")

        raise CheckpointError(
            f"{where}: backbone keys do not match: {len(missing)} missing {show(missing)}; "
            f"{len(unexpected)} unexpected {show(unexpected)}{_prefix_hint(unexpected, exp)}"
        )


def load_backbone_state_dict(
    path_or_obj: str | os.PathLike | Mapping[str, Any], expected_keys: Iterable[str] | None = None
) -> BackboneStateDict:
    """The Endo-FM backbone weights in any supported layout, with the exact key set checked.

    ``expected_keys``: the keys the caller's model has (e.g. ``model.state_dict().keys()``); without it the official
    key set for the number of blocks found is required. Raises ``CheckpointError`` on any problem.
    """
    path: str | None = None
    meta: ModelMeta | None = None
    if isinstance(path_or_obj, (str, os.PathLike)):
        p = Path(path_or_obj)
        path = str(p)
        if p.is_dir() or p.name == META_FILE:
            raw, meta = load_model_dir(p.parent if p.name == META_FILE else p)
            source, classifier = "model-dir", None
        elif p.suffix == ".safetensors":
            raw, source, classifier = _load_safetensors(p), "safetensors", None
        else:
            raw, source, classifier = _unwrap(path, safe_torch_load(p))
        where = path
    else:
        where = f"<{type(path_or_obj).__name__} checkpoint object>"
        raw, source, classifier = _unwrap(where, path_or_obj)
    backbone, extra = _split_backbone(raw)
    if meta is not None and not extra:
        # a model directory of a task model stores heads as heads.<task>.*: set them aside
        extra = {k: v for k, v in backbone.items() if k.startswith("heads.")}
        backbone = {k: v for k, v in backbone.items() if k not in extra}
    if expected_keys is None:
        depth = _depth_of(backbone)
        if depth == 0:
            raise CheckpointError(
                f"{where}: no Endo-FM backbone blocks found ('blocks.<i>.' keys); first keys: {sorted(backbone)[:8]}"
                + _prefix_hint(sorted(backbone), set(expected_backbone_keys(1)))
            )
        expected = expected_backbone_keys(depth, head="head.weight" in backbone)
    else:
        expected = list(expected_keys)
    _check_keys(where, backbone, expected)
    out = BackboneStateDict(backbone, source, path)
    out.classifier, out.extra, out.meta = classifier, extra, meta
    log.info("%s: %d backbone tensors (%s), %d set aside", where, len(out), source, len(extra))
    return out


def _load_safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: truncated or corrupt safetensors file ({exc})") from exc


# --------------------------------------------------------------------------------------------- model directory
def _module_config(module: nn.Module) -> EndoFMConfig | None:
    for m in (module, getattr(module, "backbone", None)):
        cfg = getattr(m, "cfg", None)
        if isinstance(cfg, EndoFMConfig):
            return cfg
    return None


def save_model_dir(
    directory: str | os.PathLike,
    module: nn.Module | Mapping[str, torch.Tensor],
    meta: ModelMeta | None = None,
    *,
    arch: str | None = None,
    preprocess: Mapping[str, Any] | None = None,
    heads: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    fp16: bool = False,
) -> Path:
    """Write ``model.safetensors`` (fp16 floats if ``fp16``) and ``model.json`` into ``directory``.

    Either pass ``meta`` or let it be built from the module's ``EndoFMConfig`` (``module.cfg`` or
    ``module.backbone.cfg``) with ``arch`` (model name), ``preprocess``, ``heads``, ``provenance``. Each file is
    written to a temporary file and renamed into place, weights first; ``model.json`` records the weights' SHA-256 so
    a reader never pairs new metadata with stale weights.
    """
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if meta is None:
        cfg = _module_config(module) if isinstance(module, nn.Module) else None
        if cfg is None:
            raise ValueError(
                "save_model_dir: pass meta=ModelMeta(...) (the module has no EndoFMConfig `cfg`)"
            )
        meta = ModelMeta.for_config(cfg, arch or "custom", preprocess, heads, provenance)
    state = module.state_dict() if isinstance(module, nn.Module) else dict(module)
    # own copies: safetensors refuses tensors that share storage (tied weights, views)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        t = v.detach().to("cpu")
        tensors[k] = (
            t.to(torch.float16)
            if fp16 and t.is_floating_point()
            else t.clone(memory_format=torch.contiguous_format)
        )
    atomic_write(d / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": MODEL_FORMAT}))
    record = meta.to_dict()
    record["weights"] = {
        "file": WEIGHTS_FILE,
        "sha256": _sha256(d / WEIGHTS_FILE),
        "dtype": "float16" if fp16 else "float32",
    }
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    atomic_write_text(d / META_FILE, text)
    log.info("wrote model directory %s (%d tensors)", d, len(tensors))
    return d


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model_dir(
    directory: str | os.PathLike, verify: bool = True
) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Read one of our model directories -> (state dict as saved, ``ModelMeta``). Floats come back as stored
    (fp16 if saved so; ``load_state_dict`` casts into the model's dtype). ``verify`` checks the weights' hash."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such model directory")
    meta_path, raw = model_json_object(d)
    weights_path = d / WEIGHTS_FILE
    meta = ModelMeta.from_dict(raw, str(meta_path))
    try:
        meta.config  # noqa: B018 - validates the architecture fields
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: invalid model metadata: {exc}") from exc
    if not weights_path.is_file():
        raise CheckpointError(f"{d}: {WEIGHTS_FILE} missing")
    expected_hash = (raw.get("weights") or {}).get("sha256")
    if verify and expected_hash and _sha256(weights_path) != expected_hash:
        raise CheckpointError(
            f"{weights_path}: weights do not match {META_FILE} (hash differs: the directory was modified or "
            "partially written)"
        )
    return _load_safetensors(weights_path), meta
