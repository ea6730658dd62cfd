"""What every benchmark script prints with: one JSON object per line, and the machine's CPU by name.

Scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and ``from common import ...``
finds this module.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


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
