"""Issue 22 item 11: folders of masks are refused as videos and as label sources, naming the folder."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from endoreview.media.masks import looks_like_mask


def _masks(folder, n=5, jpeg=False):  # binary masks like CVC-ColonDB's GT/
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        m = np.zeros((64, 80), np.uint8)
        m[10 + i : 30 + i, 20:40] = 255
        cv2.imwrite(str(folder / f"{i}.{'jpg' if jpeg else 'png'}"), m)
    return folder


def test_mask_images_are_told_from_frames():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (48, 64, 3), np.uint8)
    m = np.zeros((48, 64), np.uint8)
    m[5:20, 5:30] = 255
    assert looks_like_mask(m) and looks_like_mask(np.dstack([m, m, m])) and looks_like_mask(np.zeros_like(m))
    assert not looks_like_mask(frame)
    ok, jpg = cv2.imencode(".jpg", m)
    assert looks_like_mask(cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED))  # JPEG ringing at the edges


def test_a_masks_only_folder_is_not_imported_as_a_video(tmp_path, capsys):
    from endoreview.interchange.cli import main

    gt = _masks(tmp_path / "CVC-ColonDB" / "GT", jpeg=True)
    db = str(tmp_path / "db.sqlite3")
    assert main(["--db", db, "import", "videos", str(gt)]) == 1
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["videos_created"] == [] and str(gt) in done["failed"][0][1]
    assert "black-and-white mask" in done["failed"][0][1]


def test_check_and_import_agree_on_a_folder_of_per_video_mask_folders(tmp_path, capsys):
    from endoreview.interchange.cli import main

    root = tmp_path / "masks_only"
    for v in ("video1", "video2"):
        _masks(root / v)
    assert main(["check", str(root)]) == 2
    err = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert err["event"] == "error" and err["file"] == str(root) and "masks" in err["reason"]
    db = str(tmp_path / "db.sqlite3")
    assert main(["--db", db, "import", "labels", str(root)]) == 1
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out[-1]["labels_added"] == 0 and "masks" in out[-1]["failed"][0][1]


def test_a_label_import_that_finds_nothing_says_so_and_fails(tmp_path, capsys):
    from endoreview.interchange.cli import main

    empty = tmp_path / "labels.csv"
    empty.write_text("video,start_frame,end_frame,label\n")
    db = str(tmp_path / "db.sqlite3")
    code = main(["--db", db, "import", "labels", str(empty)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert any(e["event"] == "error" and "no labels found" in e["reason"] for e in lines)


@pytest.mark.parametrize("name", ["frames"])
def test_a_folder_of_real_frames_still_imports(tmp_path, name, capsys):
    from endoreview.interchange.cli import main

    d = tmp_path / name
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(d / f"{i:03d}.png"), rng.integers(0, 255, (48, 64, 3), np.uint8))
    assert main(["--db", str(tmp_path / "db.sqlite3"), "import", "videos", str(d)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["videos_created"]
