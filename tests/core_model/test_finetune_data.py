"""Datasets read the training manifest the way the trainer needs: by video, labels on the right pixels.

``make_manifest`` (also used by the other fine-tuning tests) writes a tiny, learnable dataset: 64x64 videos of a
noisy pink background; "abnormal" videos carry a bright square that moves (track id 1), labelled with RLE masks
and boxes on every frame; "normal" videos are reviewed negatives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.data.manifest import load_manifest
from core_model.finetune import data as D
from core_model.finetune.augment import IGNORE
from core_model.finetune.config import FinetuneConfig


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}


def make_manifest(
    root: Path,
    n_videos: int = 6,
    n_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    label_every: int = 1,
    splits: tuple[str, ...] | None = None,
) -> Path:
    from core_model.video import write_video

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    videos = []
    for v in range(n_videos):
        abnormal = v % 2 == 1
        frames, labels = [], []
        x0, y0 = int(rng.integers(4, size // 2)), int(rng.integers(4, size // 2))
        side = size // 4
        for t in range(n_frames):
            img = np.empty((size, size, 3), np.uint8)
            img[..., 0] = 150 + rng.integers(0, 30, (size, size))
            img[..., 1] = 60 + rng.integers(0, 20, (size, size))
            img[..., 2] = 70 + rng.integers(0, 20, (size, size))
            mask = np.zeros((size, size), bool)
            if abnormal:
                xs, ys = min(x0 + t, size - side - 1), y0
                img[ys : ys + side, xs : xs + side] = (250, 230, 120)
                mask[ys : ys + side, xs : xs + side] = True
            frames.append(img)
            if t % label_every:
                continue
            if abnormal:
                ys_, xs_ = np.nonzero(mask)
                box = [float(xs_.min()), float(ys_.min()), float(xs_.max() + 1), float(ys_.max() + 1)]
                labels.append(
                    {
                        "frame": t,
                        "masks": [{"label": "polyp", "track_id": 1, "rle": _rle(mask)}],
                        "boxes": [{"label": "polyp", "track_id": 1, "bbox": box}],
                    }
                )
            else:
                labels.append({"frame": t, "negative": True})
        name = f"vid{v:02d}"
        write_video(root / f"{name}.mp4", np.stack(frames), fps=10.0, crf=12)
        split = splits[v] if splits else ("val" if v >= n_videos - 2 else "train")
        videos.append(
            {
                "id": name,
                "path": f"{name}.mp4",
                "split": split,
                "num_frames": n_frames,
                "fps": 10.0,
                "width": size,
                "height": size,
                "site": "test",
                "video_label": "abnormal" if abnormal else "normal",
                "segments": [{"start": 0, "end": n_frames, "label": "polyp"}] if abnormal else [],
                "frames": labels,
            }
        )
    manifest = {
        "schema": "endoreview.training-manifest",
        "version": 1,
        "source": {"generator": "tests"},
        "classes": {
            "video": ["normal", "abnormal"],
            "mask": ["polyp"],
            "box": ["polyp"],
            "segment": ["polyp"],
        },
        "videos": videos,
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("ft-data"), label_every=2)


def _cfg(manifest: Path, **kw) -> FinetuneConfig:
    base = dict(
        manifest=str(manifest),
        tasks=("classification", "segmentation", "detection"),
        num_frames=4,
        img_size=32,
        frame_stride=2,
    )
    base.update(kw)
    return FinetuneConfig(**base)


def test_sequences_follow_the_manifest_split_by_video(tiny_manifest):
    m = load_manifest(tiny_manifest)
    seqs = D.build_sequences(m)
    assert {s.video.id for s in seqs["train"]} == {"vid00", "vid01", "vid02", "vid03"}
    assert {s.video.id for s in seqs["val"]} == {"vid04", "vid05"}
    assert all(s.start == 0 and s.end == 16 for ss in seqs.values() for s in ss)


def test_cvc_sequences_cut_one_long_video_and_leakfree_has_no_overlap():
    from core_model.finetune.presets import cvc_sequences

    off = cvc_sequences("cvc12k-official")
    free = cvc_sequences("cvc12k-leakfree")
    assert len(off["train"]) == 20 and len(off["test"]) == 9
    assert sum(e - s for s, e in off["train"]) == 401 and sum(e - s for s, e in off["test"]) == 171
    assert len(set(off["train"]) & set(off["test"])) == 7
    assert not set(free["train"]) & set(free["test"]) and len(free["train"]) == 13
    assert (0, 25) in off["test"]  # 1-based (1, 25) -> frames [0, 25)


def test_train_clips_carry_labels_on_the_object(tiny_manifest):
    m = load_manifest(tiny_manifest)
    cfg = _cfg(tiny_manifest)
    classes = D.resolve_classes(m, cfg.tasks)
    seqs = D.build_sequences(m)
    ds = D.ClipDataset(seqs["train"], cfg, classes, train=True)
    assert len(ds) == 4 * cfg.clips_per_video
    seen_fg = False
    for k in range(len(ds)):
        s = ds[k]
        assert s["clip"].shape == (3, 4, 32, 32)
        vid = ds.seqs[ds.items[k][0]].video
        assert int(s["label"]) == (1 if vid.video_label == "abnormal" else 0)
        for t, f in enumerate(s["frames"].tolist()):
            m_t = s["masks"][t]
            if f % 2:  # unlabelled frame (label_every=2): ignored by the losses
                assert bool((m_t == IGNORE).all()) and not bool(s["box_valid"][t])
                continue
            assert bool(s["box_valid"][t])
            if vid.video_label == "normal":
                assert int(m_t.sum()) == 0 and s["boxes"][t].shape[0] == 0
            elif int((m_t == 1).sum()) > 20:
                seen_fg = True
                # masked pixels are the bright ones (red channel after normalisation is high)
                red = s["clip"][0, t]
                assert red[m_t == 1].mean() > red[m_t == 0].mean() + 0.5
    assert seen_fg


def test_training_clips_are_deterministic_per_seed_and_epoch(tiny_manifest):
    m = load_manifest(tiny_manifest)
    cfg = _cfg(tiny_manifest)
    classes = D.resolve_classes(m, cfg.tasks)
    seqs = D.build_sequences(m)["train"]
    a = D.ClipDataset(seqs, cfg, classes, train=True)
    b = D.ClipDataset(seqs, cfg, classes, train=True)
    assert torch.equal(a[3]["clip"], b[3]["clip"])
    b.set_epoch(1)
    assert not torch.equal(a[3]["clip"], b[3]["clip"])


def test_eval_clips_cover_every_frame_once(tiny_manifest):
    m = load_manifest(tiny_manifest)
    cfg = _cfg(tiny_manifest)
    seq = D.build_sequences(m)["val"][0]
    clips = D.eval_clips(seq, cfg, per_frame=True)
    frames = np.concatenate(clips)
    assert set(frames.tolist()) == set(range(16))
    assert len(frames) == 16  # 4 clips x 4 frames, no duplicates
    assert all(np.all(np.diff(c) == 2) for c in clips)  # the stride the model trains with


def test_missing_classes_and_missing_files_are_named(tiny_manifest, tmp_path):
    m = load_manifest(tiny_manifest)
    data = json.loads(tiny_manifest.read_text())
    data["classes"] = {"video": ["normal", "abnormal"]}
    for v in data["videos"]:
        for f in v["frames"]:
            f.pop("masks", None)
            f.pop("boxes", None)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="segmentation.*classes.mask"):
        D.resolve_classes(load_manifest(p), ("segmentation",))
    seqs = D.build_sequences(m)["train"]
    gone = D.SequenceRef(seqs[0].video, str(tmp_path / "nope.mp4"), 0, 16, "train")
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        D.check_files([gone])
