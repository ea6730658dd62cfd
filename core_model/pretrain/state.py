"""Run checkpoints, the weights a run starts from, and teacher exports.

A run checkpoint (``checkpoint.pth``, plus ``checkpoint{epoch:04}.pth`` every ``saveckp_freq`` epochs) is the one
run-checkpoint format of ``core_model.training`` (kind ``pretrain``: versioned, written atomically, read with
``weights_only=True``). It holds ``student``, ``teacher`` (``backbone.*`` + ``head.*`` keys, head last layer as
``weight_g``/``weight_v``), ``optimizer``, ``scaler`` (None without fp16), ``dino_loss`` (its ``center``), ``epoch``
(epochs completed), ``config`` (the resolved config dict) and ``backbone_config`` (the backbone's own config).

The start of a new run (``model.init_checkpoint``; ``read_start_checkpoint``): ``bundled`` (``resources/demo_model``,
the default), a user's ``endo_fm.pth``, an official ``checkpoint.pth`` (student, teacher, centre and optimiser carry
over), a model directory or any layout the converter reads; ``scratch`` (or null) for random weights.

Exports of the teacher:

- ``export_official(path, teacher, ...)``: the official layout (reference §2.3) ``{'teacher': {'backbone.…', 'head.…'},
  'student': {'module.backbone.…', …}, 'epoch', 'dino_loss'}``, readable by the official downstream code, by our
  converter and as the start of another run;
- ``export_model_dir(dir, teacher_backbone, ...)``: the project's model directory via ``core_model.checkpoint``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from core_model import training
from core_model.atomic import atomic_write
from core_model.training import RunCheckpointError

log = logging.getLogger(__name__)

__all__ = [
    "BUNDLED",
    "SCRATCH",
    "ResumeError",
    "StartCheckpoint",
    "atomic_torch_save",
    "export_model_dir",
    "export_official",
    "load_run_checkpoint",
    "read_start_checkpoint",
    "save_run_checkpoint",
    "resolve_init_checkpoint",
]


ResumeError = RunCheckpointError  # a run cannot be resumed or started; the message names the file and reason


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through the project's one atomic write (temporary file, fsync, rename)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_run_checkpoint(path: str | Path) -> dict[str, Any]:
    """A pretraining run checkpoint, read safely (``core_model.training``'s one run-checkpoint format)."""
    return training.load_run_checkpoint(
        path, "pretrain", ("student", "teacher", "optimizer", "dino_loss", "epoch")
    )


def save_run_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return training.save_run_checkpoint(path, "pretrain", state)


# ---------------------------------------------------------------------------------------------------- start weights

BUNDLED = "bundled"  # ``model.init_checkpoint`` value naming the backbone shipped in resources/demo_model
SCRATCH = "scratch"  # ``model.init_checkpoint`` value (or null) for random initialisation


def bundled_model_dir() -> Path:
    """The model directory shipped with the project (``resources/demo_model``)."""
    return Path(__file__).resolve().parents[2] / "resources" / "demo_model"


@dataclass
class StartCheckpoint:
    """The weights a run starts from (``model.init_checkpoint``), read once.

    ``student`` / ``teacher``: MultiCropWrapper state dicts (``backbone.*`` and, when the file has a DINO head,
    ``head.*``). An official run checkpoint (``train_ssl.py``'s ``checkpoint.pth``, or our ``teacher_official.pth``
    export) gives both, plus the DINO centre, the optimiser state when present and its ``epoch``; any other layout
    the converter reads (``endo_fm.pth``, a flat backbone, one of our model directories) gives the same backbone to
    both. ``meta``: the ``ModelMeta`` of a model directory (its backbone architecture)."""

    path: str
    source: str
    student: dict[str, torch.Tensor]
    teacher: dict[str, torch.Tensor]
    center: torch.Tensor | None = None
    optimizer: dict[str, Any] | None = None
    epoch: int = 0
    meta: Any = None
    head_loaded: bool = False  # set by build_models: the DINO head fitted (so do the centre and optimiser)


def resolve_init_checkpoint(value: str | None) -> str | None:
    """``model.init_checkpoint`` -> a path, or None for a run from scratch."""
    if value is None or value == SCRATCH:
        return None
    if value == BUNDLED:
        d = bundled_model_dir()
        if not (d / "model.json").is_file():
            raise ResumeError(
                f"{d}: the bundled backbone is missing; pass --init PATH (endo_fm.pth, an official checkpoint.pth or "
                "a model directory) or --from-scratch"
            )
        return str(d)
    return value


def _is_official_run(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("student"), dict)
        and isinstance(obj.get("teacher"), dict)
    )


def read_start_checkpoint(path: str | Path) -> StartCheckpoint:
    """Read the weights a run starts from, safely (``weights_only=True``); ``CheckpointError`` names the file."""
    from core_model.checkpoint import META_FILE, CheckpointError, load_backbone_state_dict, safe_torch_load

    p = Path(path)
    if p.is_file() and p.suffix != ".safetensors" and p.name != META_FILE:
        obj = safe_torch_load(p)
        if _is_official_run(obj):
            student = dict(obj["student"])
            if all(k.startswith("module.") for k in student):
                student = {k[len("module.") :]: v for k, v in student.items()}  # the student was under DDP
            teacher = dict(obj["teacher"])
            for name, sd in (("student", student), ("teacher", teacher)):
                bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
                if bad or not any(k.startswith("backbone.") for k in sd):
                    raise CheckpointError(
                        f"{p}: '{name}' is not a MultiCropWrapper state dict (keys {sorted(sd)[:4]})"
                    )
            loss_sd = obj.get("dino_loss")
            center = loss_sd.get("center") if isinstance(loss_sd, dict) else None
            optim = obj.get("optimizer") if isinstance(obj.get("optimizer"), dict) else None
            epoch = obj.get("epoch", 0)
            return StartCheckpoint(
                str(p),
                "official-run",
                student,
                teacher,
                center,
                optim,
                int(epoch) if isinstance(epoch, int) else 0,
            )
    sd = load_backbone_state_dict(p)
    both = {f"backbone.{k}": v for k, v in sd.items()}
    both.update({k: v for k, v in sd.extra.items() if k.startswith("head.")})
    return StartCheckpoint(str(p), sd.source, both, dict(both), meta=sd.meta)


def export_official(
    path: str | Path, teacher: nn.Module, student: nn.Module, epoch: int, dino_loss: nn.Module
) -> Path:
    """Official layout: ``teacher`` with ``backbone.``/``head.`` keys, ``student`` with the DDP ``module.`` prefix."""
    obj = {
        "teacher": {k: v.detach().cpu() for k, v in teacher.state_dict().items()},
        "student": {f"module.{k}": v.detach().cpu() for k, v in student.state_dict().items()},
        "epoch": epoch,
        "dino_loss": {k: v.detach().cpu() for k, v in dino_loss.state_dict().items()},
        "motion_student": 0,
        "motion_teacher": 0,
    }
    return atomic_torch_save(obj, path)


def export_model_dir(
    out_dir: str | Path,
    backbone: nn.Module,
    arch: str,
    preprocess: dict[str, Any],
    provenance: dict[str, Any],
) -> Path:
    """The teacher backbone as one of the project's model directories (``model.safetensors`` + ``model.json``)."""
    from core_model.checkpoint import save_model_dir

    return Path(save_model_dir(out_dir, backbone, arch=arch, preprocess=preprocess, provenance=provenance))
