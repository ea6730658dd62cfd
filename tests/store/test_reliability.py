"""Crash safety and concurrency with real processes on real files.

* SIGKILL at random moments during a burst of label edits: every edit acknowledged after its commit is in the
  database afterwards, and ``PRAGMA integrity_check`` passes (5 trials here, 20 in the slow variant).
* A job process writing predictions while a reviewer process writes labels: no "database is locked" reaches
  either, and nothing is lost.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from endoreview.store import Store

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_video(url: str) -> int:
    with Store.open(url, reviewer="setup") as s:
        ls = s.find_label_set("set") or s.create_label_set(
            "set", [{"name": "polyp", "tasks": ["mask", "box"]}]
        )
        p = s.find_project("P") or s.create_project("P", ls.id)
        v = s.add_video(
            p.id, path="/x.mp4", path_is_relative=False, content_hash=f"p1:{random.random()}", size_bytes=1,
            frame_count=100_000, fps=30, width=48, height=32,
        )  # fmt: skip
        return v.id


def crash_trials(tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    video_id = make_video(url)
    acked: dict[int, tuple[int, float, float]] = {}
    total_acks = 0
    for trial in range(trials):
        proc = spawn("edits", url, str(video_id), str(seed * 1000 + trial))
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while "ready\n" not in lines:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "child never became ready"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(5)
        proc.stderr.close()
        for line in lines:
            if line.startswith("ack ") and line.endswith("\n"):  # a torn last line was never acknowledged
                _, lid, ver, x0, y0 = line.split()
                acked[int(lid)] = (int(ver), float(x0), float(y0))
                total_acks += 1
        with Store.open(url) as s:
            assert s.integrity_check() == "ok", f"trial {trial}"
            assert s.pragmas()["journal_mode"] == "wal"
            for lid, (ver, x0, y0) in acked.items():
                lab = s.get_label(lid)  # raises if an acknowledged label is missing
                assert lab.version >= ver, f"trial {trial}: label {lid} lost acknowledged edit v{ver}"
                if lab.version == ver:
                    assert lab.bbox[:2] == (x0, y0)
            # the next child starts from what is in the database now
            acked = {lab.id: (lab.version, lab.bbox[0], lab.bbox[1]) for lab in s.labels_for_video(video_id)}
    assert total_acks >= trials, "the children were killed before doing any work"


def test_sigkill_during_edits_loses_no_acknowledged_edit(tmp_path):
    crash_trials(tmp_path, trials=5, seed=1)


@pytest.mark.slow
def test_sigkill_during_edits_loses_no_acknowledged_edit_many_trials(tmp_path):
    crash_trials(tmp_path, trials=25, seed=2)


def test_job_writing_predictions_while_reviewer_writes_labels(db_url, tmp_path):
    video_id = make_video(db_url)
    go = tmp_path / "go"
    job = spawn("predictions", db_url, str(video_id), "8", GO_FILE=str(go))
    reviewer = spawn("labels", db_url, str(video_id), "80", GO_FILE=str(go))
    for p in (job, reviewer):  # both connected and ready: start them together
        line = p.stdout.readline()
        assert line == "ready\n", p.stderr.read()
    go.touch()
    out_j, err_j = job.communicate(timeout=240)
    out_r, err_r = reviewer.communicate(timeout=240)
    for out, err, code in ((out_j, err_j, job.returncode), (out_r, err_r, reviewer.returncode)):
        assert "locked" not in err.lower() and "busy" not in err.lower(), err
        assert code == 0, err
        assert out.splitlines()[-1].startswith("done")
    (start_j, end_j), (start_r, end_r) = (
        (float(o.splitlines()[0].split()[-1]), float(o.splitlines()[-1].split()[-1])) for o in (out_j, out_r)
    )
    assert start_j < end_r and start_r < end_j, "the two writers did not overlap in time"
    _, lab_id, version, _ = out_r.splitlines()[-1].split()
    with Store.open(db_url) as s:
        counts = s.count_labels(video_id)
        assert counts[("mask", "suggested")] == 8 * 200
        assert counts[("segment", "manual")] == 40 and counts[("box", "manual")] == 1
        assert s.get_label(int(lab_id)).version == int(version) == 41
        run = s.list_prediction_runs(video_id)[0]
        assert (run.state, run.frames_done, len(s.frame_probs(run.id))) == ("finished", 1600, 1600)
        assert s.integrity_check() == "ok"
