"""``endofm cut-clips``: long videos become official-style pretraining clips and a ``path,-1`` list."""

from __future__ import annotations

import json

import numpy as np

from core_model.pretrain import clips
from core_model.pretrain.data import read_clip_list
from core_model.video import VideoReader, write_video


def _video(path, n, fps, h=48, w=64):
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(n) * 255 // max(n - 1, 1))[:, None, None]  # red encodes time
    return write_video(path, frames, fps=fps)


def test_cut_clips_lengths_short_side_resampling_and_csv(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _video(src / "long.mp4", 80, 30)  # 1 s clips at 30 fps: 30 + 50 (the last clip absorbs the remainder)
    _video(src / "short.mp4", 20, 30)  # shorter than a clip: one clip
    _video(src / "slow.mp4", 40, 15)  # 15 fps -> resampled to 30 fps: 80 frames -> 30 + 50
    (src / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "clips"
    rc = clips.main([str(src), "--out", str(out), "--clip-seconds", "1", "--short-side", "32"])
    assert rc == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events].count("error") == 1 and "broken.mp4" in events[0]["video"]
    assert events[-1]["event"] == "done" and events[-1]["clips"] == 5 and events[-1]["failed"] == 1
    listed = read_clip_list(out / "train.csv")
    assert all(line.endswith(",-1") for line in (out / "train.csv").read_text().splitlines())
    lengths = {}
    for path in listed:
        with VideoReader(path) as r:
            lengths[path.name] = len(r)
            assert (r.meta.height, r.meta.width) == (32, 42)  # short side 32, long side rounded to even
            assert abs(r.meta.fps - 30) < 0.01
    assert lengths == {
        "long_00000.mp4": 30,
        "long_00001.mp4": 50,
        "short_00000.mp4": 20,
        "slow_00000.mp4": 30,
        "slow_00001.mp4": 50,
    }
    with VideoReader(out / "long_00001.mp4") as r:  # the second clip starts at source frame 30
        assert abs(int(r[0][..., 0].mean()) - 30 * 255 // 79) <= 6
