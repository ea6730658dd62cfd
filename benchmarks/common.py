"""What every benchmark script prints with: one JSON object per line, and the machine's CPU by name.

Scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and ``from common import ...``
finds this module.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def benchmark_parser(doc: str | None, small: str = "a quick CPU-sized run") -> argparse.ArgumentParser:
    """A benchmark's command line: described by the first paragraph of ``doc`` (its module docstring), with the
    ``--small`` switch every benchmark has (``small``: what it runs then)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help=small)
    return ap


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed at once (a reader follows the run as it goes)."""
    print(json.dumps(obj), flush=True)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device: Any = None) -> str:
    """The accelerator's name when ``device`` is a CUDA ``torch.device``, else the CPU's (:func:`cpu_name`)."""
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name()


# the frame index is stamped in every frame of a benchmark's video as a 4x3 grid of black/white blocks in the top-left
# corner (robust to compression): it holds the index modulo 4096 (a wrong frame 4096 away is not a plausible error)
BITS = 12


def stamp(frame: np.ndarray, index: int) -> None:
    """Write ``index`` (modulo ``2**BITS``) into ``frame`` (H x W x 3, uint8) in place."""
    b = frame.shape[0] // 14
    for k in range(BITS):
        r, c = divmod(k, 4)
        frame[r * b : (r + 1) * b, c * b : (c + 1) * b] = 235 if (index >> k) & 1 else 16


def read_stamp(frame: np.ndarray) -> int:
    """The index :func:`stamp` wrote (read from each block's centre)."""
    b = frame.shape[0] // 14
    v = 0
    for k in range(BITS):
        r, c = divmod(k, 4)
        if frame[r * b + b // 4 : (r + 1) * b - b // 4, c * b + b // 4 : (c + 1) * b - b // 4].mean() > 128:
            v |= 1 << k
    return v


def run_child(
    cmd: list[str], env: dict[str, str], cwd: Path, needed: str
) -> dict[str, dict[str, Any]] | None:
    """Run a benchmark's measuring child process and pass on (:func:`emit`) every JSON line it printed; returns
    them by their ``step``, or None (after emitting an ``error`` step with its stderr) when it failed or printed no
    ``needed`` step."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    steps: dict[str, dict[str, Any]] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            steps[obj["step"]] = obj
            emit(obj)
    if out.returncode != 0 or needed not in steps:
        emit({"step": "error", "stderr": out.stderr[-3000:]})
        return None
    return steps
