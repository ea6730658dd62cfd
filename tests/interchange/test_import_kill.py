"""Issue 19 row 4: an import unit is all or nothing under SIGKILL, and importing again repairs instead of duplicating."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

from endoreview.interchange.importer import Importer
from endoreview.store import Store
from tests.interchange import import_child


def _run_child(db, video, work, pause_after):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.interchange.import_child",
            str(db),
            str(video),
            str(work),
            str(pause_after),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_import_leaves_nothing_and_reimport_repairs(tmp_path):
    db = tmp_path / "labels.sqlite3"
    video = import_child.make_video(tmp_path / "in" / "case01.mp4")
    Store.open(str(db)).close()
    child = _run_child(
        db, video, tmp_path / "work", pause_after=import_child.N_MASKS * 2 // 5
    )  # 600 of 1,500
    try:
        line = child.stdout.readline()
        assert line.strip() == "paused", (line, child.stderr.read() if child.poll() is not None else "")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Store.open(str(db), reviewer="alice") as store:
        labels = [lab for v in store.list_videos() for lab in store.labels_for_video(v.id)]
        assert labels == [], f"{len(labels)} labels of a killed import unit were kept as ground truth"
        n_videos = len(store.list_videos())
        assert n_videos <= 1
        rep = Importer(store, work_dir=tmp_path / "work").import_collection(import_child.collection(video))
        assert rep.ok and rep.labels_added == import_child.N_MASKS
        videos = store.list_videos()
        assert len(videos) == 1  # repaired, not a second video
        assert len(store.labels_for_video(videos[0].id)) == import_child.N_MASKS
        again = Importer(store, work_dir=tmp_path / "work").import_collection(import_child.collection(video))
        assert again.labels_added == 0 and len(store.labels_for_video(videos[0].id)) == import_child.N_MASKS
