"""Archive mode of ``endofm predict``: many videos, many processes (``torchrun``), one JSON-lines file per video.

    torchrun --nproc_per_node 4 -m core_model predict /archive/videos --model MODEL --out-dir /archive/preds
    torchrun --nnodes 8 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29400 \\
        -m core_model predict videos.txt --model MODEL --out-dir /shared/preds          # 64 GPUs on 8 nodes

- **Disjoint shares.** The inputs expand to one ordered list (``expand_inputs``: files, folders, manifests, or a
  ``.txt`` list with one path per line); rank ``r`` of ``w`` takes videos ``r, r + w, r + 2w, ...``. No process
  talks to another while predicting (the process group is only joined for the final barrier), so a slow video
  delays only its own rank; GPUs are ``cuda:LOCAL_RANK`` (``core_model.runtime``); on the CPU each rank gets an
  equal share of the cores.
- **One output per video**, ``OUT/<name>-<8 hex of the path>.jsonl``: the ``Predictor`` events of that video,
  written atomically (``core_model.atomic``) once the video is done, so a file that exists is complete.
- **Reruns skip finished videos** (their output exists), and retry failed or interrupted ones.
- **Per-rank log** ``OUT/rank-<r>.jsonl``: one line per video (``done``, ``skipped`` or ``failed`` with the reason),
  appended across reruns; rank 0 writes ``OUT/index.json`` (every finished output) after all ranks finish.
- The outputs import into the library with ``python -m endoreview.interchange import predictions OUT``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core_model.atomic import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["output_name", "run_archive", "shard"]

INDEX_FILE = "index.json"


def output_name(video: str | os.PathLike) -> str:
    """``<stem>-<8 hex of the absolute path>.jsonl``: stable across reruns and ranks, unique per path."""
    p = Path(video)
    digest = hashlib.sha1(os.fspath(p.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem)[:80] or "video"
    return f"{stem}-{digest}.jsonl"


def shard(videos: Sequence[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s videos: every ``world_size``-th one, starting at ``rank`` (disjoint, together all)."""
    return [v for i, v in enumerate(videos) if i % world_size == rank]


def run_archive(
    videos: Sequence[str],
    out_dir: str | os.PathLike,
    predict: Callable[[str], Any],
    *,
    rank: int = 0,
    world_size: int = 1,
    frames: Sequence[int] | None = None,
    echo: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Predict this rank's share of ``videos`` into ``out_dir``; ``predict(video)`` returns the Predictor's event
    iterator for one video. Returns counts ``{"done", "skipped", "failed", "frames"}``; ``echo`` gets each log line.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mine = shard(list(videos), rank, world_size)
    counts = {"done": 0, "skipped": 0, "failed": 0, "frames": 0}
    with open(out / f"rank-{rank:03d}.jsonl", "a", encoding="utf-8") as rank_log:

        def note(entry: dict[str, Any]) -> None:
            entry = {"rank": rank, "world_size": world_size, **entry}
            rank_log.write(json.dumps(entry, separators=(",", ":")) + "\n")
            rank_log.flush()
            if echo is not None:
                echo(entry)

        for video in mine:
            target = out / output_name(video)
            if target.exists():
                counts["skipped"] += 1
                note({"event": "skipped", "video": video, "output": target.name})
                continue
            t0 = time.perf_counter()
            written: dict[str, int] = {}
            try:
                atomic_write(target, functools.partial(_stream_events, events=predict(video), result=written))
                status, message = "done", ""
            except _StreamIncomplete as exc:
                status, message = "failed", str(exc)
            except Exception as exc:  # a model/runtime failure on this video: logged, the next one runs
                log.debug("prediction failed on %s", video, exc_info=True)
                status, message = "failed", f"{type(exc).__name__}: {exc}"
            if status == "done":
                n = written["frames"]
                counts["done"] += 1
                counts["frames"] += n
                note(
                    {
                        "event": "done",
                        "video": video,
                        "output": target.name,
                        "frames": n,
                        "seconds": round(time.perf_counter() - t0, 3),
                    }
                )
            else:
                counts["failed"] += 1
                note({"event": "failed", "video": video, "message": message})
    return counts


class _StreamIncomplete(Exception):
    """The prediction stream of one video ended without ``video_done`` (an error or a cancel event, or cut short)."""


def _stream_events(tmp: Path, events, result: dict[str, int]) -> None:
    """Write ``events`` to ``tmp`` as JSON lines; ``result["frames"]``: the number of frame events. Raises
    ``_StreamIncomplete`` unless the stream ends the video, so ``atomic_write`` never puts an incomplete output in
    place."""
    n = 0
    done, message = False, "the prediction stream ended before the video was done"
    with open(tmp, "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            kind = event.get("event")
            if kind == "frame":
                n += 1
            elif kind == "video_done":
                done, message = True, ""
            elif kind in ("error", "cancelled"):
                done, message = False, str(event.get("message", kind))
    if not done:
        raise _StreamIncomplete(message)
    result["frames"] = n


def write_index(out_dir: str | os.PathLike) -> Path:
    """``index.json``: every finished output in ``out_dir`` with its video (rank 0, after the barrier)."""
    out = Path(out_dir)
    entries = []
    for f in sorted(out.glob("*.jsonl")):
        if f.name.startswith("rank-"):
            continue
        with open(f, encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "{}")
        entries.append({"output": f.name, "video": first.get("video"), "frames": first.get("frames")})
    path = out / INDEX_FILE
    atomic_write_text(path, json.dumps({"outputs": entries}, indent=1))
    return path
