"""A child process for the import kill test: imports one video with 1,500 masks and pauses mid-write.

python -m tests.interchange.import_child DB VIDEO WORK_DIR PAUSE_AFTER
prints "paused" (and sleeps) after PAUSE_AFTER label rows were sent to the database; 0 = never pause.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

N_MASKS = 1500
N_FRAMES = 30
SIZE = 16


def make_video(path: Path) -> Path:
    import numpy as np

    from core_model.video import write_video

    rng = np.random.default_rng(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, rng.integers(0, 255, (N_FRAMES, SIZE, SIZE, 3), dtype=np.uint8), fps=25.0)
    return path


def collection(video: Path):
    import numpy as np

    from core_model.contract import rle_encode
    from endoreview.interchange.model import Collection, MaskAnn, Provenance, VideoItem

    item = VideoItem(name=video.stem, source=video)
    for i in range(N_MASKS):
        m = np.zeros((SIZE, SIZE), np.uint8)
        m[i % 8 : i % 8 + 4, (i // 8) % 12 : (i // 8) % 12 + 4] = 1
        item.masks.append(
            MaskAnn(
                i % N_FRAMES,
                "polyp",
                rle_encode(m),
                Provenance("masks.json", field=f"masks[{i}]"),
                track_id=i,
            )
        )
    return Collection(videos=[item], layout="test")


def main(db: str, video: str, work_dir: str, pause_after: int) -> None:
    from sqlalchemy import event

    from endoreview.interchange.importer import Importer
    from endoreview.store import Store

    store = Store.open(db, reviewer="importer")
    sent = [0]

    @event.listens_for(store.engine, "after_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO LABELS"):
            sent[0] += 1
            if pause_after and sent[0] == pause_after:
                print("paused", flush=True)
                time.sleep(600)

    rep = Importer(store, work_dir=work_dir).import_collection(collection(Path(video)))
    print("done", rep.summary(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
