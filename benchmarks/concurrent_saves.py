"""UI label saves while a prediction job writes to the same SQLite database (issue 19 row 8, issue 23).

Both writers run in one run, as separate processes on one database file (WAL, synchronous=FULL, as the app opens it):

* the **job** commits predicted frames back to back through ``Store.add_frame_predictions`` in batches of
  ``--batch-frames`` (256, the predict job's default), each frame with class probabilities and one polyp mask
  (COCO RLE of a 480x640 frame) — the worst case, a job that never pauses for model compute;
* the **reviewer** saves labels one at a time as the editor does (alternately a new box and an edit of a box, each
  one audited transaction), with ``--think-ms`` between saves, timing each save from call to return; it first runs
  alone for half the time (``reviewer_alone``: what a save costs on this machine at this moment, without the job).

Target (issue 19 row 8): UI save p99 <= 100 ms on SQLite while the job writes.

    python benchmarks/concurrent_saves.py            # 30 s
    python benchmarks/concurrent_saves.py --small    # 8 s

Output: one JSON object per line; the last is ``{"event": "summary", ...}`` naming the machine and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import benchmark_parser, cpu_name, emit


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(round(q / 100 * (len(ys) - 1))))]


def polyp_rle(i: int) -> dict[str, Any]:
    import numpy as np

    from core_model.contract import rle_encode

    m = np.zeros((480, 640), np.uint8)
    cy, cx = 200 + (i * 7) % 80, 300 + (i * 11) % 120
    yy, xx = np.ogrid[:480, :640]
    m[(yy - cy) ** 2 + (xx - cx) ** 2 <= 60**2] = 1
    return rle_encode(m)


def job(db: str, video_id: int, seconds: float, batch: int, go: str) -> None:
    from endoreview.store import Store
    from endoreview.store.records import FramePrediction

    store = Store.open(db, reviewer="predict-job")
    run = store.start_prediction_run(video_id, None)
    tx_times: list[float] = []
    real_write = store._write

    def timed_write(
        summary, fn, **kw
    ):  # how long each batch holds the write lock (BEGIN IMMEDIATE .. COMMIT)
        def timed_fn(tx):
            t0 = time.perf_counter()
            out = fn(tx)
            tx.session.flush()
            tx_times.append(time.perf_counter() - t0)
            return out

        return real_write(summary, timed_fn, **kw)

    store._write = timed_write
    masks = [polyp_rle(i) for i in range(16)]
    while not os.path.exists(go):
        time.sleep(0.002)
    t_end = time.monotonic() + seconds
    frame, commits = 0, []
    while time.monotonic() < t_end:
        frames = [
            FramePrediction(
                f,
                {"normal": 0.3, "abnormal": 0.7},
                masks=({"label": "polyp", "score": 0.9, "rle": masks[f % 16]},),
            )
            for f in range(frame, frame + batch)
        ]
        t0 = time.perf_counter()
        store.add_frame_predictions(run.id, frames)
        commits.append(time.perf_counter() - t0)
        frame += batch
    store.finish_prediction_run(run.id)
    emit(
        {
            "event": "job",
            "frames": frame,
            "batches": len(commits),
            "batch_ms_p50": round(1000 * pct(commits, 50), 1),
            "batch_ms_p99": round(1000 * pct(commits, 99), 1),
            "lock_held_ms_p50": round(1000 * pct(tx_times, 50), 1),
            "lock_held_ms_p99": round(1000 * pct(tx_times, 99), 1),
        }
    )
    store.close()


def reviewer(db: str, video_id: int, seconds: float, think_ms: float, go: str) -> None:
    from endoreview.store import Store
    from endoreview.store.records import NewLabel

    store = Store.open(db, reviewer="reviewer")
    lab = store.add_labels([NewLabel(video_id, "box", "polyp", frame=0, bbox=(0, 0, 5, 5))])[0]
    while not os.path.exists(go):
        time.sleep(0.002)
    t_end = time.monotonic() + seconds
    lat: list[float] = []
    i = 0
    while time.monotonic() < t_end:
        i += 1
        t0 = time.perf_counter()
        if i % 2:
            lab = store.edit_label(lab.id, lab.version, bbox=(i % 30, 0, i % 30 + 5, 5))
        else:
            store.add_labels([NewLabel(video_id, "box", "polyp", frame=i % 1000, bbox=(1, 1, 9, 9))])
        lat.append(time.perf_counter() - t0)
        time.sleep(think_ms / 1000)
    emit(
        {
            "event": "reviewer",
            "saves": len(lat),
            "p50_ms": round(1000 * pct(lat, 50), 1),
            "p95_ms": round(1000 * pct(lat, 95), 1),
            "p99_ms": round(1000 * pct(lat, 99), 1),
            "max_ms": round(1000 * max(lat), 1),
        }
    )
    store.close()


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "8 s instead of 30 s")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--batch-frames", type=int, default=256)
    ap.add_argument("--think-ms", type=float, default=20.0)
    ap.add_argument("--role", choices=["job", "reviewer"], help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--video", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--go", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    seconds = a.seconds or (8.0 if a.small else 30.0)
    if a.role == "job":
        job(a.db, a.video, seconds, a.batch_frames, a.go)
        return 0
    if a.role == "reviewer":
        reviewer(a.db, a.video, seconds, a.think_ms, a.go)
        return 0

    from endoreview.store import Store

    with tempfile.TemporaryDirectory() as td:
        db = str(Path(td) / "labels.sqlite3")
        with Store.open(db, reviewer="setup") as s:
            ls = s.create_label_set("b", [{"name": "polyp", "color": "#f00", "tasks": ["mask", "box"]}])
            p = s.create_project("bench", ls.id)
            v = s.add_video(
                p.id, path="/x.mp4", path_is_relative=False, content_hash="p1:bench", size_bytes=1,
                frame_count=10_000_000, fps=30.0, width=640, height=480, codec="h264",
            )  # fmt: skip
        # the same reviewer alone first: what a save costs on this machine right now, without the job
        alone_go = str(Path(td) / "go-alone")
        Path(alone_go).touch()
        alone = subprocess.run(
            [sys.executable, __file__, "--db", db, "--video", str(v.id), "--go", alone_go,
             "--seconds", str(seconds / 2), "--role", "reviewer", "--think-ms", str(a.think_ms)],
            capture_output=True, text=True, timeout=seconds + 300,
        )  # fmt: skip
        solo = json.loads(alone.stdout.strip().splitlines()[-1])
        emit({**solo, "event": "reviewer_alone"})
        go = str(Path(td) / "go")
        base = [
            sys.executable,
            __file__,
            "--db",
            db,
            "--video",
            str(v.id),
            "--go",
            go,
            "--seconds",
            str(seconds),
        ]
        procs = [
            subprocess.Popen(
                [*base, "--role", "job", "--batch-frames", str(a.batch_frames)],
                stdout=subprocess.PIPE,
                text=True,
            ),
            subprocess.Popen(
                [*base, "--role", "reviewer", "--think-ms", str(a.think_ms)],
                stdout=subprocess.PIPE,
                text=True,
            ),
        ]
        time.sleep(3.0)  # both opened the database and built their inputs
        Path(go).touch()
        results: dict[str, dict[str, Any]] = {}
        for pr in procs:
            out, _ = pr.communicate(timeout=seconds + 300)
            for line in out.splitlines():
                obj = json.loads(line)
                results[obj["event"]] = obj
                emit(obj)
        r, j = results.get("reviewer", {}), results.get("job", {})
        emit(
            {
                "event": "summary",
                "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.system()}",
                "database": "SQLite (WAL, synchronous=FULL)",
                "seconds": seconds,
                "ui_saves": r.get("saves"),
                "ui_save_p99_ms": r.get("p99_ms"),
                "ui_save_max_ms": r.get("max_ms"),
                "ui_save_alone_p99_ms": solo.get("p99_ms"),
                "job_frames": j.get("frames"),
                "job_batch_ms_p50": j.get("batch_ms_p50"),
                "target_p99_ms": 100,
                "meets_target": bool(r.get("p99_ms") is not None and r["p99_ms"] <= 100),
            }
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
