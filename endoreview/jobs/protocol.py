"""The JSON-lines protocol between a job subprocess and whoever started it (the app's ``QProcess``).

The job writes one JSON object per line to stdout, flushed at once; nothing else goes to stdout (logs go to
stderr and the job's log file). Every object has ``"event"``:

* ``{"event": "started", "job": id, "kind": "predict"}``
* ``{"event": "progress", "job": id, "fraction": 0..1, "done": n, "total": n, "message": "video 3: frame 120/900"}``
* ``{"event": "video_done", "job": id, "video_id": 3, "run_id": 7, "frames": 900, "labels": 1234}``
* ``{"event": "error", "job": id, "message": "..."}`` (a problem; the job may continue with the next item)
* ``{"event": "done", "job": id, "state": "succeeded"|"failed"|"cancelled", "result": {...}}`` — always last.

Videos are named by id, never by path. Exit status: 0 succeeded, 1 failed, 2 bad arguments, 3 cancelled.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 3
_lock = threading.Lock()


def emit(event: str, stream: IO[str] | None = None, **fields: Any) -> dict[str, Any]:
    """Write one protocol line (thread-safe) and return the object written."""
    obj = {"event": event, **fields}
    line = json.dumps(obj, separators=(",", ":"), default=str)
    out = stream or sys.stdout
    with _lock:
        out.write(line + "\n")
        out.flush()
    return obj


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """One protocol object from a line of job output (None for blank or non-protocol lines)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


def read_events(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        obj = parse_line(line)
        if obj is not None:
            yield obj
