"""Durability trials with real processes on real files: how many trials, how many acknowledged writes lost.

* ``power_loss``: a writer committing label edits back to back is frozen at random moments and its database + WAL
  copied without closing anything (what a power cut leaves); each copy is opened as the app would;
* ``job_lock_kill``: a prediction job is SIGKILLed while it holds the write lock mid-transaction;
* ``import_kill``: an import of one video with 1,500 masks is SIGKILLed in the middle of writing the unit; nothing of
  the unit may remain and importing again must give exactly one video with 1,500 labels.

After every trial the database must pass ``PRAGMA integrity_check`` and hold every acknowledged write.
(Kills during label edits: tests/store/test_reliability.py, 5 trials per default run, 25 in the slow one.)

    python benchmarks/durability.py            # 20 power cuts, 10 job kills, 5 import kills
    python benchmarks/durability.py --small    # 6, 3, 2

Output: one JSON object per line; the last is ``{"event": "summary", ...}`` naming the machine and the figures.
"""

from __future__ import annotations

import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import benchmark_parser, cpu_name, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def import_kill_trials(tmp: Path, trials: int) -> dict[str, int]:
    from endoreview.interchange.importer import Importer
    from endoreview.store import Store
    from tests.interchange import import_child

    result = {"trials": 0, "losses": 0, "damaged": 0, "leftover_labels": 0, "duplicate_videos": 0}
    for t in range(trials):
        d = tmp / f"imp{t}"
        db = d / "labels.sqlite3"
        video = import_child.make_video(d / "in" / "case.mp4")
        Store.open(str(db)).close()
        pause = 100 + (t * 397) % 1300  # somewhere in the unit's 1,500 label rows
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.interchange.import_child", str(db), str(video), str(d / "w"), str(pause)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            assert proc.stdout.readline().strip() == "paused", proc.stderr.read()
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        con = sqlite3.connect(db)
        ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        with Store.open(str(db), reviewer="check") as s:
            left = sum(len(s.labels_for_video(v.id)) for v in s.list_videos())
            Importer(s, work_dir=d / "w").import_collection(import_child.collection(video))
            videos = s.list_videos()
            n = sum(len(s.labels_for_video(v.id)) for v in videos)
        result["trials"] += 1
        result["damaged"] += int(not ok)
        result["leftover_labels"] += left
        result["duplicate_videos"] += max(0, len(videos) - 1)
        result["losses"] += max(0, import_child.N_MASKS - n)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "a few trials")
    a = ap.parse_args(argv)
    from tests.store.durability import job_lock_kill_trials, power_loss_trials

    n_cut, n_job, n_imp = (6, 3, 2) if a.small else (20, 10, 5)
    t0 = time.monotonic()
    out: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        (tmp / "cut").mkdir()
        (tmp / "job").mkdir()
        out["power_loss"] = power_loss_trials(tmp / "cut", copies=n_cut, seed=1)
        emit({"event": "power_loss", **out["power_loss"]})
        out["job_lock_kill"] = job_lock_kill_trials(tmp / "job", trials=n_job, seed=2)
        emit({"event": "job_lock_kill", **out["job_lock_kill"]})
        out["import_kill"] = import_kill_trials(tmp, trials=n_imp)
        emit({"event": "import_kill", **out["import_kill"]})
    emit(
        {
            "event": "summary",
            "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.system()}",
            "database": "SQLite (WAL, synchronous=FULL)",
            "trials": sum(r["trials"] for r in out.values()),
            "acknowledged_writes_lost": sum(r["losses"] for r in out.values()),
            "damaged_databases": sum(r["damaged"] for r in out.values()),
            "per_kind": {k: f"{r['trials']} trials, {r['losses']} lost" for k, r in out.items()},
            "seconds": round(time.monotonic() - t0, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
