"""Device, distributed and mixed precision in one small module.

Everything that trains or runs a model asks this module instead of probing CUDA itself:

```python
from core_model import runtime
dist = runtime.init_distributed()          # torchrun env vars -> process group; otherwise one process, no complaint
device = runtime.pick_device()             # cuda:<local_rank> if present, else mps, else cpu
with runtime.autocast(device):             # bf16 where the GPU supports it, fp16 on older GPUs, nullcontext on CPU
    y = model(x)
if runtime.is_main_process(): save(...)    # only rank 0 writes
```

Environment overrides: ``ENDOFM_DEVICE`` (e.g. ``cpu``, ``cuda:1``) forces a device, as does ``prefer``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "amp_dtype",
    "autocast",
    "barrier",
    "get_dist_info",
    "init_distributed",
    "is_main_process",
    "pick_device",
    "seed_everything",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True
    backend: str | None = None  # None: single process, no process group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and self.backend is not None


_DIST: DistInfo = DistInfo()


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on.

    ``prefer`` (or the ``ENDOFM_DEVICE`` environment variable) wins when given; ``"cuda"`` without an index means
    this process's local rank. Otherwise CUDA if available (``cuda:<LOCAL_RANK>``), then Apple MPS, then CPU.
    Asking for CUDA on a machine without it raises ``RuntimeError`` rather than silently running on the CPU.
    """
    choice = prefer if prefer is not None else os.environ.get("ENDOFM_DEVICE") or None
    if choice is not None:
        dev = torch.device(choice)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {str(choice)!r} requested but CUDA is not available")
            if dev.index is None:
                dev = torch.device("cuda", _local_rank() % max(torch.cuda.device_count(), 1))
        elif dev.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {str(choice)!r} requested but MPS is not available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", _local_rank() % torch.cuda.device_count())
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: bf16 where supported, else fp16 on GPUs, None (fp32) on CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dev.type == "mps":
        return torch.float16
    return None


def autocast(device: str | torch.device, dtype: torch.dtype | None = None, enabled: bool = True):
    """Autocast context for ``device``; a ``nullcontext`` on CPU (fp32) or when ``enabled`` is False.

    ``dtype`` overrides the automatic choice (``torch.float32`` also disables autocast).
    """
    dev = torch.device(device)
    chosen = dtype if dtype is not None else amp_dtype(dev)
    if not enabled or chosen is None or chosen == torch.float32:
        return contextlib.nullcontext()
    if dev.type == "cpu" and dtype is None:  # pragma: no cover - amp_dtype returns None on CPU
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=chosen)


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``).

    Without those variables (or with ``WORLD_SIZE=1``) this returns a single-process ``DistInfo`` and does nothing
    else. The backend is NCCL when CUDA is available, gloo otherwise. Calling it twice returns the same info.
    """
    global _DIST
    if dist.is_available() and dist.is_initialized():
        _DIST = DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_local_rank(),
            is_main=dist.get_rank() == 0,
            backend=str(dist.get_backend()),
        )
        return _DIST
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or "RANK" not in env or not dist.is_available():
        _DIST = DistInfo()
        return _DIST
    rank = int(env["RANK"])
    local_rank = _local_rank()
    chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if chosen == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=chosen, rank=rank, world_size=world)
    _DIST = DistInfo(rank=rank, world_size=world, local_rank=local_rank, is_main=rank == 0, backend=chosen)
    log.info("distributed: rank %d/%d (local %d) backend %s", rank, world, local_rank, chosen)
    return _DIST


def get_dist_info() -> DistInfo:
    """The last ``init_distributed`` result (single process if it was never called)."""
    return _DIST


def is_main_process() -> bool:
    """True on rank 0 and in single-process runs: only this process writes files and logs progress."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return True


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean of ``value`` across ranks (tensors reduced in place on a copy; floats returned as floats)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().clone()
        if dist.get_backend() == "nccl" and t.device.type != "cuda":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / dist.get_world_size()).to(value.device)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic`` also asks cuDNN for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
