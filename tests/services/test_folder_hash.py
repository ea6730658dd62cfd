"""Issue 19 row 3: an image-sequence folder has one content hash in every process; stored legacy hashes migrate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from endoreview.services.library import LibraryService
from endoreview.store import Store


def _folder(root, n=5, seed=0):
    import cv2

    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        cv2.imwrite(str(root / f"{k:04d}.png"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    return root


def _old_f1(folder, order):
    """The hash the old code stored: listing + first/middle/last image digests in a process-dependent order."""
    from endoreview.services.hashing import _file_digest

    images = sorted(x for x in folder.iterdir() if x.suffix == ".png")
    h = hashlib.blake2b(digest_size=20)
    for x in images:
        h.update(f"{x.name}\0{x.stat().st_size}\n".encode())
    picks = [images[0], images[len(images) // 2], images[-1]]
    for i in order:
        h.update(_file_digest(picks[i]))
    return "f1:" + h.hexdigest()


def test_folder_hash_is_the_same_in_every_process(tmp_path):
    folder = _folder(tmp_path / "seq")
    code = (
        "import sys; from endoreview.services.hashing import content_hash; print(content_hash(sys.argv[1]))"
    )
    seen = set()
    for seed in ("1", "2", "3", "4", "5"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run(
            [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env, timeout=60
        )
        assert r.returncode == 0, r.stderr
        seen.add(r.stdout.strip())
    assert len(seen) == 1


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_stored_legacy_hash_is_recognised_and_migrated(tmp_path, order):
    folder = _folder(tmp_path / "seq")
    store = Store.open(str(tmp_path / "db.sqlite3"), reviewer="alice")
    try:
        lib = LibraryService(store)
        video, created = lib.import_video(_project(store), folder)
        assert created
        legacy = _old_f1(folder, order)
        store.update_video(video.id, store.get_video(video.id).version, content_hash=legacy)
        again, created = lib.import_video(video.project_id, folder)  # re-import: recognised, not duplicated
        assert not created and again.id == video.id and len(store.list_videos()) == 1
        assert not store.get_video(video.id).content_hash.startswith("f1:")
        # a video still carrying its legacy hash is rewritten at start-up
        store.update_video(video.id, store.get_video(video.id).version, content_hash=legacy)
        assert lib.migrate_folder_hashes() == 1
        assert (
            store.get_video(video.id).content_hash
            == lib.import_video(video.project_id, folder)[0].content_hash
        )
        # and a moved folder is relinked by content
        store.update_video(video.id, store.get_video(video.id).version, content_hash=legacy)
        moved = folder.rename(tmp_path / "moved")
        assert [v.id for v in lib.relink([tmp_path])] == [video.id]
        assert lib.resolve_path(store.get_video(video.id)) == moved.resolve()
    finally:
        store.close()


def _project(store):
    from endoreview.services.projects import ProjectService

    return ProjectService(store).default_project().id
