"""Issue 19 row 8: a reviewer's save never waits behind a stream of job commits on SQLite.

No timing is asserted (the machine may be slow): the test counts, through the change-set ids the database hands out
in commit order, how many job transactions committed while each save was waiting. Before the fix a job committing
back to back won SQLite's lock again and again (dozens of job commits during one save; p99 saves of seconds);
now at most the job transaction already running finishes first. The latency figures are measured by
``benchmarks/concurrent_saves.py``.
"""

from __future__ import annotations

import time

from endoreview.store import Store
from endoreview.store.annotations import PREDICTION_TX_FRAMES
from endoreview.store.records import FramePrediction, NewLabel
from tests.store.test_reliability import make_video, spawn


def test_predictions_commit_in_short_transactions(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    vid = make_video(url)
    with Store.open(url, reviewer="job") as s:
        run = s.start_prediction_run(vid, None)
        cursor = s.change_cursor()
        frames = [FramePrediction(f, {"normal": 0.4, "abnormal": 0.6}) for f in range(256)]
        s.add_frame_predictions(run.id, frames)
        commits = [c for c in s.changes_since(cursor) if c.summary == "Record predictions"]
        assert len(commits) == -(-256 // PREDICTION_TX_FRAMES) >= 4
        assert s.list_prediction_runs(vid)[0].frames_done == 256


def test_saves_do_not_wait_behind_a_stream_of_job_commits(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    vid = make_video(url)
    go = tmp_path / "go"
    job = spawn("predictions", url, str(vid), "30", GO_FILE=str(go))
    try:
        assert job.stdout.readline() == "ready\n", job.stderr.read()
        with Store.open(url, reviewer="reviewer") as s:
            lab = s.add_labels([NewLabel(vid, "box", "polyp", frame=0, bbox=(0, 0, 5, 5))])[0]
            go.touch()
            assert job.stdout.readline().startswith("start")
            waited_through = []
            for i in range(40):
                if job.poll() is not None:
                    break
                before = s.change_cursor()
                lab = s.edit_label(lab.id, lab.version, bbox=(i % 30, 0, i % 30 + 5, 5))
                waited_through.append(s.last_change_id() - before - 1)  # job commits while this save waited
                time.sleep(0.01)
        assert len(waited_through) >= 10, "the job finished before the saves could overlap it"
        assert max(waited_through) <= 2, waited_through
    finally:
        job.kill()
        job.wait(timeout=60)
