"""Run checkpoints (one dict, written atomically) and teacher exports.

A run checkpoint (``checkpoint.pth``, plus ``checkpoint{epoch:04}.pth`` every ``saveckp_freq`` epochs) holds
``student``, ``teacher`` (``backbone.*`` + ``head.*`` keys, head last layer as ``weight_g``/``weight_v``),
``optimizer``, ``scaler`` (None without fp16), ``dino_loss`` (its ``center``), ``epoch`` (epochs completed),
``config`` (the resolved config dict) and ``format``/``format_version``. It is written to a temporary file in the
same folder and renamed into place, so a crash never leaves a half-written checkpoint.

Exports of the teacher:

- ``export_official(path, teacher, ...)``: the official layout (reference §2.3) ``{'teacher': {'backbone.…', 'head.…'},
  'student': {'module.backbone.…', …}, 'epoch', 'dino_loss'}``, readable by the official downstream code and by our
  converter;
- ``export_model_dir(dir, teacher_backbone, ...)``: the project's model directory via ``core_model.checkpoint``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from core_model.atomic import atomic_write

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "ResumeError",
    "atomic_torch_save",
    "export_model_dir",
    "export_official",
    "load_run_checkpoint",
]

CHECKPOINT_FORMAT = "endofm-pretrain"
CHECKPOINT_VERSION = 1


class ResumeError(RuntimeError):
    """A run cannot be resumed; the message names the checkpoint and the reason."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through the project's one atomic write (temporary file, fsync, rename)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_run_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"{path}: no checkpoint to resume from (run without --resume to start a new run)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ResumeError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(f"{path}: not a pretraining run checkpoint (format {CHECKPOINT_FORMAT!r} expected)")
    missing = [k for k in ("student", "teacher", "optimizer", "dino_loss", "epoch") if k not in ckpt]
    if missing:
        raise ResumeError(f"{path}: checkpoint lacks {missing}")
    return ckpt


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
