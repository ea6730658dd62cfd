"""Training infrastructure shared by pretraining and fine-tuning: one home for each piece.

- ``cosine_scheduler``: per-iteration values, linear warm-up then a half cosine (dino's ``cosine_scheduler``).
- ``rng_state`` / ``set_rng_state``: every RNG a run draws from (torch, CUDA, NumPy, Python), as tensors and plain
  numbers only, so a run checkpoint loads with ``weights_only=True``.
- ``is_oom`` / ``halve_batch_on_oom``: a CUDA out-of-memory error, and the back-off (half the batch, retry the
  epoch) that fine-tuning uses; pretraining does not back off, because its batch sets the learning rate and the
  official recipe's global batch (it stops with the error instead).
- ``save_run_checkpoint`` / ``load_run_checkpoint`` / ``restore``: the one run-checkpoint format of both recipes.
  A versioned dict (``format`` "endofm-run", ``format_version``, ``kind`` "pretrain" | "finetune", then the recipe's
  objects by name), written atomically (``core_model.atomic``), read with ``weights_only=True`` and an allow-list of
  harmless classes (``core_model.checkpoint.safe_torch_load``), restored by name. A crafted pickle is refused before
  anything in it runs, and the error names the file (never PyTorch's advice to switch the weights-only guard off).
- Mixed precision: ``core_model.runtime.autocast`` (one context for both recipes).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core_model.atomic import atomic_write

__all__ = [
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "RunCheckpointError",
    "cosine_scheduler",
    "halve_batch_on_oom",
    "is_oom",
    "load_run_checkpoint",
    "restore",
    "rng_state",
    "save_run_checkpoint",
    "set_rng_state",
]

RUN_FORMAT = "endofm-run"
RUN_FORMAT_VERSION = 1
_LEGACY_FORMATS = {"endofm-pretrain": "pretrain"}  # pretraining run checkpoints written before the one format


class RunCheckpointError(RuntimeError):
    """A run checkpoint cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------------------------------------------- schedules


def cosine_scheduler(
    base_value: float,
    final_value: float,
    epochs: int,
    niter_per_ep: int,
    warmup_epochs: float = 0,
    start_warmup_value: float = 0.0,
) -> np.ndarray:
    """``[epochs * niter_per_ep]`` values: linear warm-up from ``start_warmup_value`` over ``warmup_epochs``
    (``np.linspace`` including both ends, as dino), then a half cosine from ``base_value`` to ``final_value``."""
    total = int(epochs * niter_per_ep)
    if total <= 0:
        raise ValueError(
            f"a schedule needs at least one iteration (epochs={epochs}, per epoch={niter_per_ep})"
        )
    warmup_iters = min(int(round(warmup_epochs * niter_per_ep)), total)
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(total - warmup_iters)
    n = max(len(iters), 1)
    cos = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(math.pi * iters / n))
    out = np.concatenate((warmup, cos))
    assert len(out) == total
    return out


# ---------------------------------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    assert kind == "MT19937"
    py_version, py_state, py_gauss = random.getstate()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": None if py_gauss is None else float(py_gauss),
        },
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
    if "python" in st:
        p = st["python"]
        random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# ---------------------------------------------------------------------------------------------------- memory


def is_oom(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) out-of-memory error."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def halve_batch_on_oom(
    exc: BaseException, batch_size: int, device: torch.device | str | None = None
) -> int | None:
    """The out-of-memory back-off: the batch to retry with after ``exc`` (half, at least 1, with the CUDA cache
    emptied), or None when ``exc`` is not an out-of-memory error or the batch is already 1 (re-raise then)."""
    if not is_oom(exc) or batch_size <= 1:
        return None
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return max(1, batch_size // 2)


# ---------------------------------------------------------------------------------------------------- run checkpoints


def save_run_checkpoint(path: str | Path, kind: str, state: dict[str, Any]) -> Path:
    """Write ``state`` (the recipe's objects by name: state dicts, numbers, strings, tensors, ``rng_state()``) as
    one versioned dict, atomically."""
    obj = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "kind": kind, **state}
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_run_checkpoint(path: str | Path, kind: str, required: Iterable[str] = ()) -> dict[str, Any]:
    """Read a run checkpoint of ``kind`` safely; ``RunCheckpointError`` (naming the file) for anything else."""
    from core_model.checkpoint import CheckpointError, safe_torch_load

    p = Path(path)
    if not p.is_file():
        raise RunCheckpointError(f"{p}: no run checkpoint to resume from")
    try:
        ckpt = safe_torch_load(p)
    except CheckpointError as exc:
        raise RunCheckpointError(str(exc)) from None
    if not isinstance(ckpt, dict):
        raise RunCheckpointError(f"{p}: not a run checkpoint (a {type(ckpt).__name__}, not a dict)")
    fmt = ckpt.get("format")
    found = (
        _LEGACY_FORMATS.get(fmt)
        if fmt in _LEGACY_FORMATS
        else ckpt.get("kind")
        if fmt == RUN_FORMAT
        else None
    )
    if found is None:
        raise RunCheckpointError(f"{p}: not a run checkpoint (format {fmt!r}; {RUN_FORMAT!r} expected)")
    version = ckpt.get("format_version")
    if fmt == RUN_FORMAT and (not isinstance(version, int) or version > RUN_FORMAT_VERSION):
        raise RunCheckpointError(
            f"{p}: run checkpoint version {version!r} is newer than this program reads ({RUN_FORMAT_VERSION}); "
            "update the program"
        )
    if found != kind:
        raise RunCheckpointError(f"{p}: a {found} run checkpoint, not a {kind} one")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise RunCheckpointError(f"{p}: run checkpoint lacks {missing}")
    return ckpt


def restore(ckpt: dict[str, Any], where: str | Path, **objects: Any) -> None:
    """``obj.load_state_dict(ckpt[name])`` for every ``name=obj`` given (None objects are skipped); a missing or
    mismatching entry raises ``RunCheckpointError`` naming ``where`` and the object."""
    for name, obj in objects.items():
        if obj is None:
            continue
        if ckpt.get(name) is None:
            raise RunCheckpointError(f"{where}: run checkpoint has no '{name}' state")
        try:
            obj.load_state_dict(ckpt[name])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RunCheckpointError(f"{where}: '{name}' does not fit this run: {first}") from None
