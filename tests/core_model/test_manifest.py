"""The training manifest: what the app hands to core_model must round-trip and be refused when wrong."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from core_model.data.manifest import (
    BoxLabel,
    FrameLabels,
    ManifestError,
    ManifestVideo,
    MaskLabel,
    Segment,
    TrainingManifest,
    assign_splits,
    load_manifest,
    save_manifest,
)


def _rle(h, w, box):
    m = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    r["counts"] = r["counts"].decode()
    return r


def _manifest(n=5):
    vids = []
    for i in range(n):
        frames = (
            FrameLabels(
                3,
                masks=(MaskLabel("polyp", _rle(48, 64, (5, 6, 20, 30)), 1),),
                boxes=(BoxLabel("polyp", (5, 6, 20, 30), 1),),
            ),
            FrameLabels(7, negative=True),
        )
        vids.append(
            ManifestVideo(
                id=f"v{i}",
                path=f"videos/v{i}.mp4",
                split="unassigned",
                num_frames=10,
                fps=30.0,
                width=64,
                height=48,
                video_label="abnormal" if i % 2 else "normal",
                segments=(Segment(2, 8, "polyp"),),
                frames=frames,
            )
        )
    classes = {"video": ("normal", "abnormal"), "segment": ("polyp",), "mask": ("polyp",), "box": ("polyp",)}
    return TrainingManifest(tuple(vids), classes, source={"generator": "test"})


def test_round_trip_is_exact(tmp_path):
    m = _manifest()
    p = save_manifest(m, tmp_path / "m.json")
    back = load_manifest(p)
    assert back.videos == m.videos
    assert back.classes == m.classes
    # relative video paths resolve against the manifest's folder
    assert back.resolve_path(back.videos[0]) == tmp_path / "videos" / "v0.mp4"
    # the mask decodes to the same pixels
    dec = mask_utils.decode(back.videos[0].frames[0].masks[0].rle)
    assert dec.sum() == 15 * 24
    assert back.videos[0].frame_has_object(3) is True
    assert back.videos[0].frame_has_object(7) is False
    assert back.videos[0].frame_has_object(5) is None
    assert back.label_counts()["mask"] == {"polyp": 5}


def test_splits_are_per_video_and_deterministic():
    vids = _manifest(20).videos
    a = assign_splits(vids, val_fraction=0.2, test_fraction=0.1, seed=3)
    b = assign_splits(vids, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert [v.split for v in a] == [v.split for v in b]
    counts = {s: sum(v.split == s for v in a) for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 4, "test": 2}
    c = assign_splits(vids, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert [v.split for v in a] != [v.split for v in c]
    # two videos still give one val video and one train video
    two = assign_splits(vids[:2], val_fraction=0.2)
    assert sorted(v.split for v in two) == ["train", "val"]


@pytest.mark.parametrize(
    "mutate, where, reason",
    [
        (lambda d: d.update(schema="something-else"), "schema", "not a training manifest"),
        (lambda d: d.update(version=99), "version", "newer EndoReview"),
        (lambda d: d["videos"][0].pop("num_frames"), "videos[0] (id v0)", "missing field 'num_frames'"),
        (
            lambda d: d["videos"][0]["frames"][0].update(frame=10),
            "frames[0].frame",
            "frame 10 does not exist",
        ),
        (lambda d: d["videos"][0]["frames"][0]["boxes"][0].update(bbox=[5, 6, 200, 30]), "bbox", "outside"),
        (lambda d: d["videos"][0]["frames"][0]["masks"][0]["rle"].update(size=[10, 10]), "rle", "differs"),
        (lambda d: d["videos"][0]["segments"][0].update(end=2), "segments[0]", "non-empty range"),
        (
            lambda d: d["videos"][0].update(video_label="cancer"),
            "video_label",
            "not one of the video classes",
        ),
        (lambda d: d["videos"][1].update(id="v0"), "videos[1] (id v0)", "duplicate video id"),
        (lambda d: d["videos"][0].update(split="holdout"), "split", "is not one of"),
    ],
)
def test_malformed_manifest_names_file_field_and_reason(tmp_path, mutate, where, reason):
    p = save_manifest(_manifest(), tmp_path / "m.json")
    d = json.loads(p.read_text())
    mutate(d)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ManifestError) as ei:
        load_manifest(bad)
    msg = str(ei.value)
    assert str(bad) in msg and where in msg and reason in msg


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"schema": "endoreview.training-manifest", "version": 1,\n "videos": [')
    with pytest.raises(ManifestError, match=r"broken.json: line 2 .*not valid JSON"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.json")


def test_save_refuses_invalid_and_leaves_old_file(tmp_path):
    p = save_manifest(_manifest(), tmp_path / "m.json")
    before = p.read_bytes()
    m = _manifest()
    broken = TrainingManifest((m.videos[0], m.videos[0]), m.classes)  # duplicate id
    with pytest.raises(ManifestError):
        save_manifest(broken, p)
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["m.json"]
