"""Durability trials shared by the default tests (few trials) and ``benchmarks/durability.py`` (many).

Each returns ``{"trials": n, "losses": acknowledged writes missing afterwards, "damaged": databases failing
integrity_check}``; a trial is a real child process on a real file.

* :func:`power_loss_trials` — a child commits label edits back to back (acknowledging each after its commit); at a
  random moment it is frozen (SIGSTOP), the database and its WAL are copied without closing anything (as a power
  cut leaves them: no ``-shm``), and it continues. Each copy is opened as the app would.
* :func:`job_lock_kill_trials` — a job child commits prediction batches (acknowledged), then is SIGKILLed while it
  holds the write lock in the middle of a transaction; the reviewer's earlier saves, the job's acknowledged batches
  and nothing of the torn one must be there, and the reviewer can save at once.
"""

from __future__ import annotations

import random
import shutil
import signal
import threading
import time
from pathlib import Path

from endoreview.store import Store
from endoreview.store.records import NewLabel
from tests.store.test_reliability import make_video, spawn


def _check(url: str, acked: dict[int, tuple[int, float, float]]) -> tuple[int, bool]:
    losses = 0
    with Store.open(url, reviewer="check") as s:
        ok = s.integrity_check() == "ok"
        for lid, (ver, x0, y0) in acked.items():
            try:
                lab = s.get_label(lid)
            except Exception:
                losses += 1
                continue
            if lab.version < ver or (lab.version == ver and lab.bbox[:2] != (x0, y0)):
                losses += 1
    return losses, ok


def power_loss_trials(tmp_path: Path, copies: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    db = tmp_path / "live.sqlite3"
    url = f"sqlite:///{db}"
    video_id = make_video(url)
    proc = spawn("edits", url, str(video_id), str(seed))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    result = {"trials": 0, "losses": 0, "damaged": 0}
    try:
        deadline = time.monotonic() + 60
        while "ready\n" not in lines:
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never became ready"
            time.sleep(0.01)
        for k in range(copies):
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGSTOP)
            try:
                acked: dict[int, tuple[int, float, float]] = {}
                for line in list(lines):
                    if line.startswith("ack ") and line.endswith("\n"):
                        _, lid, ver, x0, y0 = line.split()
                        acked[int(lid)] = (int(ver), float(x0), float(y0))
                snap = tmp_path / f"cut{k}"
                snap.mkdir()
                shutil.copy(db, snap / db.name)
                wal = db.with_name(db.name + "-wal")
                if wal.exists():
                    shutil.copy(wal, snap / wal.name)
            finally:
                proc.send_signal(signal.SIGCONT)
            losses, ok = _check(f"sqlite:///{snap / db.name}", acked)
            result["trials"] += 1
            result["losses"] += losses
            result["damaged"] += int(not ok)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    return result


def job_lock_kill_trials(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    url = f"sqlite:///{tmp_path / 'job.sqlite3'}"
    video_id = make_video(url)
    result = {"trials": 0, "losses": 0, "damaged": 0}
    for t in range(trials):
        with Store.open(url, reviewer="reviewer") as s:
            saved = s.add_labels([NewLabel(video_id, "box", "polyp", frame=t, bbox=(1, 1, 6 + t, 6))])[0]
        k = rng.randrange(1, 4)
        proc = spawn("jobpause", url, str(video_id), str(k))
        try:
            run_id = int(proc.stdout.readline().split()[1])
            batches = 0
            while True:
                line = proc.stdout.readline()
                if line.startswith("batch"):
                    batches += 1
                elif line.startswith("locked"):
                    break
                else:
                    raise AssertionError(
                        f"job child: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
                    )
            proc.send_signal(signal.SIGKILL)  # while it holds the write lock mid-transaction
        finally:
            proc.wait(timeout=60)
        with Store.open(url, reviewer="reviewer") as s:
            ok = s.integrity_check() == "ok"
            losses = 0
            try:
                if s.get_label(saved.id).bbox != saved.bbox:
                    losses += 1
            except Exception:
                losses += 1
            run = next(r for r in s.list_prediction_runs(video_id) if r.id == run_id)
            stored = len(s.frame_probs(run_id))
            losses += max(0, batches * 32 - stored)  # acknowledged frames missing
            assert run.frames_done == stored == batches * 32, "a torn job transaction left rows behind"
            s.add_labels([NewLabel(video_id, "box", "polyp", frame=t, bbox=(2, 2, 8, 8))])  # the lock is free
        result["trials"] += 1
        result["losses"] += losses
        result["damaged"] += int(not ok)
    return result
