"""Label store operations on SQLite on disk, each beside raw ``sqlite3`` doing the same work on the same file.

Library: 200 videos and 2 million label rows — 20 videos of 100,000 frames with a predicted polyp mask (COCO RLE of
a 480x640 frame) on every frame, the other 180 short videos with a segment and a video class each. Inserted through
the store's own bulk path (``Store.add_frame_predictions``).

Measured, interleaved (store, raw, store, raw … so machine noise hits both alike):

* ``frame_lookup``: every label of one random frame (``Store.labels_for_frame`` -> frozen dataclasses) vs raw
  ``SELECT * FROM labels WHERE video_id=? AND frame=?`` + ``fetchall``; p50/p95 over ``--lookups``.
* ``timeline``: the label summary of a whole 100k-frame video (``Store.timeline_summary``: per-frame counts by kind
  and state + segments) vs the same two queries in raw sqlite3; median of ``--timeline-reps``.
* ``edit_commit``: one audited edit committed (``Store.edit_label``: version check, update, change set, audit entry
  with before/after JSON, ``synchronous=FULL`` commit) vs raw sqlite3 doing the same statements in one
  ``BEGIN IMMEDIATE`` transaction; p50/p95 over ``--edits``.
* database size per million mask labels (after a WAL checkpoint).

Raw sqlite3 uses the same file, indexes and pragmas (WAL, synchronous=FULL, foreign_keys, busy_timeout).
Bar (issue 4): frame lookup and edit commit within 3x raw sqlite3.

    python benchmarks/store_ops.py                # full: 2M labels (several minutes to build)
    python benchmarks/store_ops.py --small        # ~1 minute: 20 videos, 100k mask labels

Output: one JSON object per line; the last is ``{"event": "summary", ...}`` naming the machine.
"""

from __future__ import annotations

import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import benchmark_parser, cpu_name, emit

from endoreview.store import Store
from endoreview.store.database import SQLITE_PRAGMAS
from endoreview.store.records import FramePrediction, NewLabel


def make_rles(n: int = 64, h: int = 480, w: int = 640) -> list[dict[str, Any]]:
    """Polyp-like blobs (ellipses of varied size and place) as COCO RLE."""
    from core_model.contract import rle_encode

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(20, 90), rng.uniform(20, 90)
        m = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
        out.append(rle_encode(m))
    return out


def build(store: Store, n_videos: int, n_long: int, long_frames: int, batch: int) -> tuple[list[int], int]:
    ls = store.create_label_set("bench", [{"name": "polyp", "tasks": ["segment", "mask", "box"]}])
    project = store.create_project("bench", ls.id)
    rles = make_rles()
    long_ids, n_masks = [], 0
    t0 = time.perf_counter()
    for i in range(n_videos):
        is_long = i < n_long
        v = store.add_video(
            project.id, path=f"videos/case_{i:04d}.mp4", path_is_relative=True, content_hash=f"p1:{i:040x}",
            size_bytes=10**9, frame_count=long_frames if is_long else 3000, fps=30.0, width=640, height=480,
            codec="h264",
        )  # fmt: skip
        if not is_long:
            store.add_labels(
                [
                    NewLabel(v.id, "segment", "polyp", start_frame=100, end_frame=400),
                    NewLabel(v.id, "video_class", "abnormal"),
                ]
            )
            continue
        long_ids.append(v.id)
        run = store.start_prediction_run(v.id, None)
        for start in range(0, long_frames, batch):
            frames = [
                FramePrediction(
                    f, masks=({"label": "polyp", "score": 0.9, "rle": rles[f % len(rles)], "track_id": 1},)
                )
                for f in range(start, min(start + batch, long_frames))
            ]
            n_masks += store.add_frame_predictions(run.id, frames)
        store.finish_prediction_run(run.id)
        emit(
            {
                "event": "build",
                "video": v.id,
                "mask_labels": n_masks,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    return long_ids, n_masks


def raw_connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, timeout=SQLITE_PRAGMAS["busy_timeout"] / 1000)
    for k, v in SQLITE_PRAGMAS.items():
        con.execute(f"PRAGMA {k}={v}")
    return con


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def ms(x: float) -> float:
    return round(x * 1000, 4)


def bench_lookup(
    store: Store, con: sqlite3.Connection, videos: list[int], frames: int, n: int
) -> dict[str, Any]:
    rng = random.Random(1)
    a, b = [], []
    for _ in range(n):
        v, f = rng.choice(videos), rng.randrange(frames)
        t = time.perf_counter()
        got = store.labels_for_frame(v, f)
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = con.execute(
            "SELECT * FROM labels WHERE video_id = ? AND frame = ? ORDER BY id", (v, f)
        ).fetchall()
        b.append(time.perf_counter() - t)
        assert len(got) == len(rows) >= 1
    return {
        "store_p50_ms": ms(pct(a, 0.5)), "store_p95_ms": ms(pct(a, 0.95)),
        "raw_p50_ms": ms(pct(b, 0.5)), "raw_p95_ms": ms(pct(b, 0.95)),
        "ratio_p50": round(pct(a, 0.5) / pct(b, 0.5), 2), "ratio_p95": round(pct(a, 0.95) / pct(b, 0.95), 2),
    }  # fmt: skip


def bench_timeline(store: Store, con: sqlite3.Connection, video: int, reps: int) -> dict[str, Any]:
    a, b = [], []
    for _ in range(reps):
        t = time.perf_counter()
        summary = store.timeline_summary(video)
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        n = con.execute("SELECT frame_count FROM videos WHERE id = ?", (video,)).fetchone()[0]
        rows = con.execute(
            "SELECT kind, state, frame, count(*) FROM labels WHERE video_id = ? AND frame IS NOT NULL "
            "GROUP BY kind, state, frame",
            (video,),
        ).fetchall()
        con.execute(
            "SELECT * FROM labels WHERE video_id = ? AND frame IS NULL ORDER BY start_frame", (video,)
        ).fetchall()
        b.append(time.perf_counter() - t)
        assert summary.frame_count == n and sum(int(x.sum()) for x in summary.counts.values()) == sum(
            r[3] for r in rows
        )
    return {
        "frames": n, "store_median_ms": ms(statistics.median(a)), "raw_median_ms": ms(statistics.median(b)),
        "ratio": round(statistics.median(a) / statistics.median(b), 2),
    }  # fmt: skip


def raw_edit(con: sqlite3.Connection, label_id: int, x: float) -> None:
    """What an audited edit is, in plain SQL: check the version, update, one change set, one audit entry."""
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    con.execute("BEGIN IMMEDIATE")
    try:
        cur = con.execute("SELECT * FROM labels WHERE id = ?", (label_id,))
        cols = [d[0] for d in cur.description]
        before = dict(zip(cols, cur.fetchone()))
        con.execute(
            "UPDATE labels SET x0 = ?, y0 = 1, x1 = ?, y1 = 9, state = 'edited', reviewed_by = 'raw', reviewed_at = ?, "
            "updated_by = 'raw', updated_at = ?, version = version + 1 WHERE id = ? AND version = ?",
            (x, x + 8, now, now, label_id, before["version"]),
        )
        cs = con.execute(
            "INSERT INTO change_sets (actor, host, at, summary, video_id) VALUES ('raw', 'bench', ?, 'Edit label', ?)",
            (now, before["video_id"]),
        ).lastrowid
        after = {**before, "x0": x, "x1": x + 8, "version": before["version"] + 1}
        con.execute(
            "INSERT INTO audit_log (change_set_id, table_name, row_id, op, before, after) VALUES (?, 'labels', ?, 'update', ?, ?)",
            (cs, label_id, json.dumps(before), json.dumps(after)),
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def bench_edit(store: Store, con: sqlite3.Connection, video: int, n: int) -> dict[str, Any]:
    box_ids = [
        x.id
        for x in store.add_labels(
            [NewLabel(video, "box", "polyp", frame=f, bbox=(0, 0, 8, 8)) for f in range(2 * n)]
        )
    ]
    mine, theirs = box_ids[:n], box_ids[n:]
    a, b = [], []
    for i in range(n):
        lab = store.get_label(mine[i])
        t = time.perf_counter()
        store.edit_label(lab.id, lab.version, bbox=(float(i % 50), 1.0, float(i % 50) + 8, 9.0))
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        raw_edit(con, theirs[i], float(i % 50))
        b.append(time.perf_counter() - t)
    return {
        "store_p50_ms": ms(pct(a, 0.5)), "store_p95_ms": ms(pct(a, 0.95)),
        "raw_p50_ms": ms(pct(b, 0.5)), "raw_p95_ms": ms(pct(b, 0.95)),
        "ratio_p50": round(pct(a, 0.5) / pct(b, 0.5), 2), "ratio_p95": round(pct(a, 0.95) / pct(b, 0.95), 2),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "CPU check in about a minute")
    ap.add_argument("--dir", help="where to build the database (default: a temp folder on this disk)")
    ap.add_argument("--lookups", type=int, default=None)
    ap.add_argument("--edits", type=int, default=None)
    ap.add_argument("--timeline-reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database file")
    args = ap.parse_args(argv)
    n_videos, n_long, long_frames = (20, 4, 25_000) if args.small else (200, 20, 100_000)
    lookups = args.lookups or (300 if args.small else 2000)
    edits = args.edits or (60 if args.small else 300)
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="store_ops-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "bench.sqlite3"
    db.unlink(missing_ok=True)
    emit(
        {
            "event": "config",
            "videos": n_videos,
            "long_videos": n_long,
            "long_frames": long_frames,
            "db": str(db),
        }
    )
    t0 = time.perf_counter()
    with Store.open(str(db), reviewer="bench", host="bench") as store:
        long_ids, n_masks = build(store, n_videos, n_long, long_frames, batch=5000)
    build_s = time.perf_counter() - t0
    con = raw_connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    total_labels = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    emit(
        {
            "event": "built",
            "labels": total_labels,
            "mask_labels": n_masks,
            "seconds": round(build_s, 1),
            "db_bytes": size,
        }
    )
    with Store.open(str(db), reviewer="bench", host="bench") as store:
        store.labels_for_frame(long_ids[0], 0)  # warm the pool and the statement cache
        con.execute("SELECT * FROM labels WHERE video_id = ? AND frame = ?", (long_ids[0], 0)).fetchall()
        lookup = bench_lookup(store, con, long_ids, long_frames, lookups)
        emit({"event": "row", "op": "frame_lookup", "n": lookups, **lookup})
        timeline = bench_timeline(store, con, long_ids[0], args.timeline_reps)
        emit({"event": "row", "op": "timeline", **timeline})
        edit = bench_edit(store, con, long_ids[-1], edits)
        emit({"event": "row", "op": "edit_commit", "n": edits, **edit})
    con.close()
    mb_per_million = size / 2**20 / (n_masks / 1e6)
    summary = {
        "event": "summary",
        "machine": cpu_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "mode": "small" if args.small else "full",
        "labels": total_labels,
        "videos": n_videos,
        "frame_lookup_p50_ms": lookup["store_p50_ms"],
        "frame_lookup_p95_ms": lookup["store_p95_ms"],
        "frame_lookup_ratio_p50": lookup["ratio_p50"],
        "frame_lookup_ratio_p95": lookup["ratio_p95"],
        "timeline_100k_ms" if not args.small else "timeline_25k_ms": timeline["store_median_ms"],
        "timeline_ratio": timeline["ratio"],
        "edit_commit_p50_ms": edit["store_p50_ms"],
        "edit_commit_p95_ms": edit["store_p95_ms"],
        "edit_commit_ratio_p50": edit["ratio_p50"],
        "edit_commit_ratio_p95": edit["ratio_p95"],
        "db_mib_per_million_mask_labels": round(mb_per_million, 1),
        "bar_within_3x": lookup["ratio_p50"] <= 3 and edit["ratio_p50"] <= 3,
    }
    emit(summary)
    if not args.keep and not args.dir:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
