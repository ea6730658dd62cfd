"""Child processes for the reliability tests (real processes, real files).

python -m tests.store.child edits URL VIDEO_ID SEED       # label edits, "ack" line after each commit
python -m tests.store.child predictions URL VIDEO_ID N    # N batches of predicted masks (a job's writes)
python -m tests.store.child labels URL VIDEO_ID N         # N single-label actions (a reviewer's writes)
python -m tests.store.child jobpause URL VIDEO_ID K       # K acknowledged prediction commits, then holds the
                                                          # write lock mid-transaction ("locked") until killed
"""

from __future__ import annotations

import random
import sys
import time


def rle_for(i: int) -> dict:
    import numpy as np
    from pycocotools import mask as mask_utils

    m = np.zeros((32, 48), np.uint8)
    m[(i % 20) : (i % 20) + 8, 4:20] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [32, 48], "counts": r["counts"].decode("ascii")}


def polyp_frames(masks: list[dict], a: int, b: int) -> list:
    """A batch of frames [a, b) of predictions as a job writes them: class probabilities and one polyp mask."""
    from endoreview.store.records import FramePrediction

    poly = [{"label": "polyp", "score": 0.9, "rle": m} for m in masks]
    return [
        FramePrediction(f, {"normal": 0.3, "abnormal": 0.7}, masks=(poly[f % len(poly)],))
        for f in range(a, b)
    ]


def edits(url: str, video_id: int, seed: int) -> None:
    from endoreview.store import Store
    from endoreview.store.records import NewLabel

    rng = random.Random(seed)
    store = Store.open(url, reviewer=f"crash-{seed}")
    print("ready", flush=True)
    mine: list[tuple[int, int]] = []  # (label id, version)
    i = 0
    while True:
        i += 1
        if not mine or rng.random() < 0.4:
            x0 = float(rng.randrange(0, 40))
            lab = store.add_labels(
                [NewLabel(video_id, "box", "polyp", frame=i % 100, bbox=(x0, 0, x0 + 5, 5))]
            )[0]
        else:
            k = rng.randrange(len(mine))
            lab_id, version = mine[k]
            x0 = float(rng.randrange(0, 40))
            lab = store.edit_label(lab_id, version, bbox=(x0, 1, x0 + 5, 6), rle=None)
            mine.pop(k)
        mine.append((lab.id, lab.version))
        print(f"ack {lab.id} {lab.version} {lab.bbox[0]} {lab.bbox[1]}", flush=True)


def wait_for_go(url: str) -> None:
    """Both writers start together: each says "ready", then waits for the parent's go file."""
    import os
    from pathlib import Path

    go = Path(os.environ["GO_FILE"])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)


def predictions(url: str, video_id: int, n: int) -> None:
    from endoreview.store import Store

    store = Store.open(url, reviewer="job")
    run = store.start_prediction_run(video_id, None)
    wait_for_go(url)
    print(f"start {time.time()}", flush=True)
    masks = [rle_for(i) for i in range(20)]
    for b in range(n):
        store.add_frame_predictions(run.id, polyp_frames(masks, b * 200, (b + 1) * 200))
    store.finish_prediction_run(run.id)
    print(f"done {run.id} {time.time()}", flush=True)


def labels(url: str, video_id: int, n: int) -> None:
    from endoreview.store import Store
    from endoreview.store.records import NewLabel

    store = Store.open(url, reviewer="reviewer")
    lab = store.add_labels([NewLabel(video_id, "box", "polyp", frame=0, bbox=(0, 0, 5, 5))])[0]
    wait_for_go(url)
    print(f"start {time.time()}", flush=True)
    for i in range(n):
        if i % 2:
            lab = store.edit_label(lab.id, lab.version, bbox=(i % 30, 0, i % 30 + 5, 5))
        else:
            store.add_labels([NewLabel(video_id, "segment", "polyp", start_frame=i, end_frame=i + 3)])
    print(f"done {lab.id} {lab.version} {time.time()}", flush=True)


def jobpause(url: str, video_id: int, k: int) -> None:
    from sqlalchemy import event

    from endoreview.store import Store

    store = Store.open(url, reviewer="job")
    run = store.start_prediction_run(video_id, None)
    pause = [False]

    @event.listens_for(store.engine, "after_cursor_execute")
    def _hold(conn, cursor, statement, parameters, context, executemany):
        if pause[0] and statement.lstrip().upper().startswith("INSERT INTO FRAME_OUTPUTS"):
            print("locked", flush=True)  # inside BEGIN IMMEDIATE: this process holds the write lock
            time.sleep(600)

    masks = [rle_for(i) for i in range(20)]
    print(f"ready {run.id}", flush=True)
    for b in range(k + 1):
        pause[0] = b == k
        store.add_frame_predictions(run.id, polyp_frames(masks, b * 32, (b + 1) * 32))
        print(f"batch {b}", flush=True)


if __name__ == "__main__":
    cmd, url, video_id, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"edits": edits, "predictions": predictions, "labels": labels, "jobpause": jobpause}[cmd](
        url, video_id, arg
    )
