"""Phantom videos: deterministic, exact and self-consistent ground truth, files and CLI that other parts can use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core_model.phantom import SITES, GroundTruthError, generate_video, load_ground_truth, render_video


@pytest.fixture(scope="module")
def videos():
    """A handful of small renders shared by the tests below (seed -> (frames, gt))."""
    return {seed: render_video(seed, n_frames=40, size=96) for seed in range(8)}


def test_deterministic_by_seed():
    a, ga = render_video(5, n_frames=12, size=64, site="site_b")
    b, gb = render_video(5, n_frames=12, size=64, site="site_b")
    np.testing.assert_array_equal(a, b)
    for i in range(12):
        np.testing.assert_array_equal(ga.instance_mask(i), gb.instance_mask(i))
    c, _ = render_video(6, n_frames=12, size=64, site="site_b")
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_stream_yields_the_same_frames_one_at_a_time():
    from core_model.phantom import PhantomStream

    frames, gt = render_video(2, n_frames=6, size=64)
    stream = PhantomStream(2, n_frames=6, size=64)
    assert stream.ground_truth is None and len(stream) == 6
    streamed = list(stream)
    np.testing.assert_array_equal(np.stack(streamed), frames)
    assert stream.ground_truth is not None and stream.ground_truth.segments == gt.segments


def test_a_seed_is_the_same_scene_at_any_size():
    _, small = render_video(3, n_frames=10, size=64)
    _, large = render_video(3, n_frames=10, size=160)
    assert [(t.kind, t.radius) for t in small.tracks] == [(t.kind, t.radius) for t in large.tracks]
    np.testing.assert_allclose(small.lumen / 64, large.lumen / 160, atol=1e-3)


def test_polyp_scale_grows_the_polyps_of_the_same_scene():
    """``polyp_scale`` changes only the polyps' size: the same seed keeps its camera path and polyp kinds, and the
    labelled polyp area grows about with the square of the scale; scale 1 is the default scene, pixel for pixel."""
    frames, gt = render_video(1003, n_frames=16, size=96)
    same, _ = render_video(1003, n_frames=16, size=96, polyp_scale=1.0)
    np.testing.assert_array_equal(frames, same)
    _, big = render_video(1003, n_frames=16, size=96, polyp_scale=2.5)
    assert [t.kind for t in big.tracks] == [t.kind for t in gt.tracks] and gt.tracks
    np.testing.assert_allclose(big.lumen, gt.lumen)
    area = sum(int((gt.instance_mask(i) > 0).sum()) for i in range(16))
    big_area = sum(int((big.instance_mask(i) > 0).sum()) for i in range(16))
    assert big_area > 3 * area > 0
    assert (gt.polyp_scale, big.polyp_scale) == (1.0, 2.5)  # recorded, so a file says which sizes it shows
    with pytest.raises(ValueError, match="polyp_scale"):
        render_video(0, polyp_scale=10)


def test_frames_shape_and_type(videos):
    frames, gt = videos[0]
    assert frames.shape == (40, 96, 96, 3) and frames.dtype == np.uint8
    assert (gt.num_frames, gt.width, gt.height, gt.fps) == (40, 96, 96, 30.0)


def test_ground_truth_is_self_consistent(videos):
    for _, gt in videos.values():
        has = gt.frame_has_polyp
        assert has.dtype == np.bool_ and has.shape == (gt.num_frames,)
        for i in range(gt.num_frames):
            m = gt.instance_mask(i)
            assert m.shape == (96, 96) and m.dtype == np.uint8
            ids = sorted(int(v) for v in np.unique(m) if v)
            boxes = gt.boxes(i)
            assert sorted(t for t, _ in boxes) == ids
            assert has[i] == bool(ids)
            for tid, (x0, y0, x1, y1) in boxes:  # box is the tight box of the mask, x1/y1 exclusive
                ys, xs = np.nonzero(m == tid)
                assert [x0, y0, x1, y1] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        # segments cover exactly the polyp frames, as [start, end)
        covered = np.zeros(gt.num_frames, bool)
        for s, e, label in gt.segments:
            assert label == "polyp" and 0 <= s < e <= gt.num_frames
            covered[s:e] = True
        np.testing.assert_array_equal(covered, has)
        assert gt.video_label == ("abnormal" if has.any() else "normal")
        for tr in gt.tracks:  # a track's first/last frame match where its id appears
            seen = [i for i in range(gt.num_frames) if any(t == tr.track_id for t, _ in gt.boxes(i))]
            assert (tr.first_frame, tr.last_frame) == ((seen[0], seen[-1]) if seen else (-1, -1))


def test_some_videos_are_normal_and_polyps_move_enter_and_leave(videos):
    labels = {gt.video_label for _, gt in videos.values()}
    assert labels == {"normal", "abnormal"}
    kinds = set()
    moved = entered_or_left = False
    for _, gt in videos.values():
        for tr in gt.tracks:
            kinds.add(tr.kind)
            if tr.first_frame < 0:
                continue
            entered_or_left |= tr.first_frame > 0 or tr.last_frame < gt.num_frames - 1
            centres = [
                np.mean(np.reshape(b, (2, 2)), 0)
                for i in range(gt.num_frames)
                for t, b in gt.boxes(i)
                if t == tr.track_id
            ]
            moved |= float(np.linalg.norm(centres[-1] - centres[0])) > 5
    assert moved and entered_or_left
    # across more seeds both kinds appear
    more = set()
    for seed in range(8, 30):
        more |= {tr.kind for tr in render_video(seed, n_frames=2, size=64)[1].tracks}
    assert more | kinds == {"sessile", "pedunculated"}


def test_polyp_pixels_differ_from_the_wall_around_them(videos):
    """The mask marks something visible: inside vs a ring just outside differs in brightness or texture."""
    import cv2

    contrasts = []
    for frames, gt in videos.values():
        for i in np.flatnonzero(gt.frame_has_polyp)[::5]:
            m = gt.instance_mask(int(i)) > 0
            if m.sum() < 30:
                continue
            ring = cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~m
            g = frames[i].astype(np.float32).mean(-1)
            contrasts.append(abs(g[m].mean() - g[ring].mean()) + abs(g[m].std() - g[ring].std()))
    assert contrasts and np.median(contrasts) > 4


def test_generate_video_writes_mp4_and_exact_json(tmp_path):
    from core_model.video import VideoReader

    mp4 = generate_video(tmp_path, "case", seed=1, n_frames=24, size=96, polyp_scale=2.0)
    assert mp4 == tmp_path / "case.mp4" and (tmp_path / "case.json").is_file()
    frames, gt = render_video(1, n_frames=24, size=96, polyp_scale=2.0)
    loaded = load_ground_truth(tmp_path / "case.json")
    assert (loaded.num_frames, loaded.width, loaded.height, loaded.fps) == (24, 96, 96, 30.0)
    assert loaded.polyp_scale == 2.0
    assert loaded.video_label == gt.video_label and loaded.segments == gt.segments
    np.testing.assert_array_equal(loaded.frame_has_polyp, gt.frame_has_polyp)
    for i in range(24):
        np.testing.assert_array_equal(loaded.instance_mask(i), gt.instance_mask(i))
        assert loaded.boxes(i) == gt.boxes(i)
    with VideoReader(mp4) as r:
        assert len(r) == 24 and r.meta.codec in ("h264", "mpeg4")
        decoded = r.get_batch(range(24)).astype(np.float32)
    mse = np.mean((decoded - frames.astype(np.float32)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30  # the file shows the rendered frames (PSNR > 30 dB)
    doc = json.loads((tmp_path / "case.json").read_text())
    assert doc["format"] == "endoreview.phantom-gt" and doc["video"] == "case.mp4"
    inst = [x for f in doc["frames"] for x in f["instances"]]
    if inst:
        assert set(inst[0]) >= {"track_id", "label", "bbox", "rle"} and isinstance(
            inst[0]["rle"]["counts"], str
        )


def test_load_ground_truth_errors_name_the_file(tmp_path):
    with pytest.raises(GroundTruthError, match="not found"):
        load_ground_truth(tmp_path / "none.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(GroundTruthError, match="bad.json"):
        load_ground_truth(p)
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(GroundTruthError, match="not a phantom ground-truth file"):
        load_ground_truth(p)
    p.write_text(json.dumps({"format": "endoreview.phantom-gt", "version": 1, "num_frames": 2, "frames": []}))
    with pytest.raises(GroundTruthError, match="frame entries"):
        load_ground_truth(p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown site"):
        render_video(0, site="nowhere")
    with pytest.raises(ValueError, match="even"):
        render_video(0, size=63)
    with pytest.raises(ValueError, match="n_frames"):
        render_video(0, n_frames=0)
    assert {"default", "site_b"} <= set(SITES)


def test_cli_writes_videos_ground_truth_and_a_valid_manifest(tmp_path, capsys):
    from pycocotools import mask as mask_utils

    from core_model.cli import main as endofm
    from core_model.data.manifest import load_manifest

    out = tmp_path / "phantoms"
    sheet = tmp_path / "sheet.png"
    argv = [
        "phantom",
        str(out),
        "--videos",
        "3",
        "--frames",
        "16",
        "--size",
        "64",
        "--site",
        "mixed",
        "--seed",
        "4",
    ]
    assert endofm([*argv, "--sheet", str(sheet)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "done" and sum(x["event"] == "progress" for x in lines) == 3
    import cv2

    img = cv2.imread(str(sheet))  # 2 sites x 3 videos rows, 4 frames each
    assert img is not None and img.shape == (6 * 64, 4 * 64, 3)
    m = load_manifest(out / "manifest.json")
    assert len(m.videos) == 3 and {v.site for v in m.videos} == {"default", "site_b"}
    assert {v.split for v in m.videos} <= {"train", "val"} and any(v.split == "val" for v in m.videos)
    for v in m.videos:
        path = m.resolve_path(v)
        assert path.is_file() and path.suffix == ".mp4"
        gt = load_ground_truth(path.with_suffix(".json"))
        assert v.num_frames == 16 and v.video_label == gt.video_label and v.dense
        assert [(s.start, s.end, s.label) for s in v.segments] == gt.segments
        for fl in v.frames:
            assert fl.negative == (not gt.frame_has_polyp[fl.frame])
            for mk in fl.masks:
                dec = mask_utils.decode({"size": mk.rle["size"], "counts": mk.rle["counts"].encode()})
                np.testing.assert_array_equal(dec.astype(bool), gt.instance_mask(fl.frame) == mk.track_id)


def test_cli_rejects_bad_options(tmp_path, capsys):
    from core_model.phantom.cli import main

    assert main([str(tmp_path / "x"), "--videos", "0"]) == 2
    assert main([str(tmp_path / "x"), "--site", "mars"]) == 2
    assert main([str(tmp_path / "x"), "--size", "33"]) == 2
    err = capsys.readouterr().err
    assert "--videos" in err and "mars" in err and "--size" in err
    assert not (tmp_path / "x").exists()
