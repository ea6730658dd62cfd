"""The model contract end to end: model.json format 2 and its migration, one load_model door, fine-tuning that
inherits its parent's data config and head classes, and video-level decisions by operating points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.contract import (
    CheckpointError,
    DataConfig,
    ModelMeta,
    OperatingPoint,
    calibrate_operating_point,
    migrate_model_json,
    read_model_json,
    video_decision,
)
from tests.core_model.test_finetune_data import make_manifest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo_model"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------------- model.json
def test_a_format_1_model_json_migrates_to_the_typed_data_config(tmp_path):
    old = {
        "format": "endoreview-model",
        "format_version": 1,
        "arch": {"name": "endofm_tiny", "config": {"embed_dim": 192, "depth": 6, "num_heads": 3}},
        "preprocess": {
            "mean": [0.45] * 3,
            "std": [0.225] * 3,
            "num_frames": 4,
            "img_size": 96,
            "frame_stride": 3,
            "clip_stride": 6,
        },
        "heads": {"classification": {"classes": ["normal", "abnormal"]}},
    }
    new = migrate_model_json(old)
    assert new["format_version"] == 2 and "preprocess" not in new and old["format_version"] == 1
    meta = ModelMeta.from_dict(old)
    assert meta.data == DataConfig(
        mean=(0.45,) * 3, std=(0.225,) * 3, num_frames=4, img_size=(96, 96), frame_stride=3, clip_stride=6
    )
    # what format-1 predictors did: stride sampling, sliding clips, the whole frame squashed
    assert (meta.data.sampling, meta.data.clips, meta.data.resize) == ("stride", "sliding", "squash")
    assert meta.operating_points == {} and meta.operating_point().positive == "abnormal"
    again = ModelMeta.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again.data == meta.data and again.to_dict()["format_version"] == 2
    bad = dict(old, preprocess={**old["preprocess"], "img_size": -1})
    with pytest.raises(CheckpointError, match="img_size"):
        ModelMeta.from_dict(bad, "x/model.json")
    with pytest.raises(CheckpointError, match="unknown fields"):
        ModelMeta.from_dict({**new, "data": {**new["data"], "colour": 1}}, "x/model.json")


def test_the_demo_model_json_is_format_2_and_calibrated():
    raw = json.loads((DEMO / "model.json").read_text())
    assert raw["format_version"] == 2 and "data" in raw
    meta = read_model_json(DEMO)  # torch-free reader
    op = meta.operating_point("classification")
    assert op.calibrated and op.rule == "sustained" and op.positive == "abnormal"
    assert op.sensitivity is not None and op.specificity is not None
    assert meta.ood.get("method")  # the out-of-domain reference ships with the model


# ---------------------------------------------------------------------------------------------------- decisions
def test_one_short_polyp_makes_the_video_abnormal_where_the_mean_rule_misses_it():
    fps, n = 30.0, 900  # 30 s
    p = np.full(n, 0.05)
    p[600:636] = 0.9  # a polyp in view for 1.2 s (4 % of the video)
    op = OperatingPoint(positive="abnormal", rule="sustained", window_s=1.0, threshold=0.5)
    d = video_decision(p, fps, op)
    assert d.positive and d.label == "abnormal" and (d.start, d.end) == (600, 636)
    assert d.text == "abnormal: polyp suggested at 00:20–00:21, 0.90"
    legacy = video_decision(p, fps, OperatingPoint(rule="mean", threshold=0.5))
    assert not legacy.positive  # the old argmax-of-the-mean call reads this video as normal
    # a single noisy frame is not a finding
    q = np.full(n, 0.05)
    q[100] = 0.99
    assert not video_decision(q, fps, op).positive


def test_calibration_picks_the_threshold_on_validation_and_records_its_rates():
    scores = [0.1, 0.2, 0.35, 0.3, 0.6, 0.7, 0.8, 0.9]
    truth = [False, False, False, True, True, True, True, True]
    op = calibrate_operating_point(scores, truth, OperatingPoint())
    assert op.calibrated and op.threshold == 0.25  # between the negative 0.2 and the positive 0.3
    assert (op.sensitivity, op.specificity) == (1.0, 2 / 3) and (op.n_positive, op.n_negative) == (5, 3)


# ---------------------------------------------------------------------------------------------------- load_model
def _official_pretrain_file(path: Path) -> Path:
    from core_model.models import create_model

    bb = create_model("endofm_tiny", depth=2, img_size=32, num_frames=4)
    sd = {f"backbone.{k}": v for k, v in bb.state_dict().items()}
    sd["head.mlp.0.weight"] = torch.zeros(4, 192)  # a DINO head, as the official file has
    torch.save({"teacher": sd, "student": sd, "epoch": 30}, path)
    return path


def test_load_model_reads_every_door_and_infers_the_architecture(tmp_path):
    from core_model.loading import load_model

    pth = _official_pretrain_file(tmp_path / "endo_fm.pth")
    lm = load_model(pth)
    assert lm.kind == "official-pretrain" and not lm.has_heads
    assert (lm.meta.config.depth, lm.meta.config.embed_dim, lm.meta.config.num_frames) == (2, 192, 4)
    assert lm.meta.data.frame_stride == 32 and lm.meta.data.protocol == "endofm-pretrain"
    with pytest.raises(CheckpointError, match="endofm_base is 768/12: leave --arch out"):
        load_model(pth, arch="endofm_base")
    # PolypDiag layout: backbone_state_dict with module. + the linear classifier
    from core_model.models import create_model

    bb = create_model("endofm_tiny", depth=2, img_size=32, num_frames=4)
    poly = {
        "backbone_state_dict": {f"module.{k}": v for k, v in bb.state_dict().items()},
        "state_dict": {"module.linear.weight": torch.randn(2, 192), "module.linear.bias": torch.zeros(2)},
    }
    torch.save(poly, tmp_path / "polypdiag.pth")
    lp = load_model(tmp_path / "polypdiag.pth")
    assert lp.kind == "polypdiag" and lp.meta.classes("classification") == ["normal", "abnormal"]
    assert lp.meta.data.protocol == "polypdiag-official" and lp.meta.data.clips == "first"
    with pytest.raises(CheckpointError, match="no such model directory or checkpoint"):
        load_model(tmp_path / "missing.pth")
    ld = load_model(DEMO)
    assert ld.kind == "model-dir" and set(ld.model.heads) == {"classification", "segmentation", "detection"}


def test_finetune_cli_init_from_official_checkpoint_without_arch(tmp_path):
    """``--init endo_fm.pth`` without ``--arch`` builds the checkpoint's own architecture."""
    from core_model.finetune.cli import build_config, build_parser
    from core_model.finetune.modeling import build_task_model

    pth = _official_pretrain_file(tmp_path / "endo_fm.pth")
    args = build_parser().parse_args(
        ["--manifest", "m.json", "--out", str(tmp_path / "o"), "--init", str(pth)]
    )
    cfg = build_config(args)
    model, info = build_task_model(cfg, {"video": ("normal", "abnormal")})
    assert model.backbone.cfg.depth == 2 and info["arch"].startswith("endofm_tiny")
    args = build_parser().parse_args(
        ["--manifest", "m.json", "--out", "o", "--init", str(pth), "--arch", "endofm_small"]
    )
    with pytest.raises(CheckpointError, match="leave --arch out"):
        build_task_model(build_config(args), {"video": ("normal", "abnormal")})


# ---------------------------------------------------------------------------------------------------- inheritance
PARENT_DATA = DataConfig(
    mean=(0.45, 0.45, 0.45),
    std=(0.225, 0.225, 0.225),
    num_frames=3,
    img_size=48,
    frame_stride=3,
    clip_stride=4,
)


@pytest.fixture(scope="module")
def parent_and_manifest(tmp_path_factory):
    from core_model.heads import EndoFMTaskModel, build_head, save_task_model
    from core_model.models import create_model

    root = tmp_path_factory.mktemp("inherit")
    bb = create_model("endofm_tiny", depth=2, img_size=48, num_frames=3)
    head_cfg = {"classes": ["normal", "abnormal"], "multi_label": False, "dropout": 0.0}
    head = build_head("classification", head_cfg, bb.cfg.embed_dim, bb.cfg.patch_size, bb.cfg.depth)
    model = EndoFMTaskModel(bb, {"classification": head})
    meta = ModelMeta.for_config(bb.cfg, "endofm_tiny", PARENT_DATA, {"classification": head_cfg})
    parent = save_task_model(root / "parent", model, meta)
    manifest = make_manifest(root / "data", n_videos=4, n_frames=10, size=64)
    return parent, manifest


def _run_cli(parent: Path, manifest: Path, out: Path, *extra: str) -> tuple[list[dict], Path]:
    from core_model.finetune.cli import build_config, build_parser
    from core_model.finetune.run import finetune

    argv = ["--manifest", str(manifest), "--out", str(out), "--init", str(parent), "--epochs", "1"]
    argv += ["--max-steps-per-epoch", "1", "--clips-per-video", "1", "--set", "eval_every=1", *extra]
    cfg = build_config(build_parser().parse_args(argv))
    events: list[dict] = []
    res = finetune(cfg, events.append)
    return events, Path(res.model_dir)


def test_a_child_is_fed_as_its_parent(parent_and_manifest, tmp_path):
    parent, manifest = parent_and_manifest
    events, child = _run_cli(parent, manifest, tmp_path / "run")
    meta = read_model_json(child)
    d = meta.data
    assert (d.mean, d.std, d.num_frames, d.img_size, d.frame_stride) == (
        PARENT_DATA.mean,
        PARENT_DATA.std,
        3,
        (48, 48),
        3,
    )
    # the training and validation pipeline used the parent's values (the config the datasets were built from)
    used = torch.load(tmp_path / "run" / "checkpoint.pth", map_location="cpu", weights_only=False)["config"]
    assert (used["num_frames"], used["img_size"], used["frame_stride"]) == (3, 48, 3)
    assert tuple(used["mean"]) == PARENT_DATA.mean and tuple(used["std"]) == PARENT_DATA.std
    assert set(meta.lineage["inherited"]) >= {"mean", "std", "num_frames", "img_size", "frame_stride"}
    assert meta.lineage["overrides"] == {} and meta.lineage["heads"]["classification"]["inherited"]
    # the video-level call was chosen on the validation split when the model was trained
    cal = next(e for e in events if e["event"] == "calibrated")
    assert meta.operating_point().calibrated and cal["operating_point"]["split"] == "val"
    done = next(e for e in events if e["event"] == "done")  # what the registry records as held-out metrics
    assert done["metrics"]["val"]["classification/threshold"] == meta.operating_point().threshold
    assert done["metrics"]["val"]["classification/sensitivity"] == meta.operating_point().sensitivity
    assert meta.ood.get("method") and meta.provenance["calibration"]["candidates"]
    assert not [e for e in events if e["event"] == "warning" and "parent" in e.get("message", "")]


def test_an_explicit_override_is_recorded_with_its_reason(parent_and_manifest, tmp_path):
    parent, manifest = parent_and_manifest
    events, child = _run_cli(parent, manifest, tmp_path / "run", "--img-size", "32")
    meta = read_model_json(child)
    assert meta.data.img_size == (32, 32) and meta.data.num_frames == 3  # the rest still inherited
    assert meta.lineage["overrides"] == {"img_size": {"parent": 48, "child": 32, "reason": "--img-size"}}
    warn = [e["message"] for e in events if e["event"] == "warning" and "parent" in e.get("message", "")]
    assert warn == ["img_size: 32 instead of the parent's 48 (--img-size)"]


# ---------------------------------------------------------------------------------------------------- the demo model
def _predict(video: Path) -> tuple[dict, list[dict]]:
    from core_model.inference import Predictor

    events = list(Predictor(DEMO, batch_size=8).predict_video(video))
    assert events[-1]["event"] == "video_done", events[-1]
    return events[-1], [e for e in events if e["event"] == "frame"]


def _polyp_seed(n: int, want: int) -> tuple[np.ndarray, np.ndarray]:
    """A phantom video with at least ``want`` polyp frames (0: none)."""
    from core_model.phantom import render_video

    for seed in range(7000, 7100):
        frames, gt = render_video(seed, n_frames=n, size=128, polyp_scale=2.5)
        has = gt.frame_has_polyp
        if (has.sum() >= want) if want else not has.any():
            return frames, has
    raise AssertionError("no phantom seed found")


def test_a_video_with_one_short_polyp_is_called_abnormal_and_located(tmp_path):
    """3 s of normal mucosa with a polyp in view for 0.6 s (18 frames, a fifth of the video): the whole-video call
    (the demo model's calibrated operating point: the best polyp-mask score sustained over 0.5 s) is abnormal and
    the banner points at the polyp; the legacy call (argmax of the mean over clips) reads it as normal."""
    from core_model.video import write_video

    normal, _ = _polyp_seed(90, want=0)
    polyp, has = _polyp_seed(48, want=18)
    frames = normal.copy()
    frames[45:63] = polyp[np.flatnonzero(has)[:18]]
    write_video(tmp_path / "short.mp4", frames, fps=30.0)
    done, _ = _predict(tmp_path / "short.mp4")
    d, op = done["decision"], done["operating_point"]
    assert op["calibrated"] and op["rule"] == "sustained"
    assert d["positive"] and d["label"] == "abnormal", d
    assert 40 <= d["start"] < 63 and d["end"] > 45  # the located evidence is the polyp's
    assert d["text"].startswith("abnormal: polyp suggested at 00:01"), d["text"]
    assert done["probs"]["abnormal"] < 0.5  # argmax of the mean over clips would have said "normal"


def test_a_scene_that_is_not_endoscopy_is_flagged_out_of_domain_and_keeps_its_predictions(tmp_path):
    from core_model.video import write_video

    yy, xx = np.mgrid[:128, :128]
    scene = []
    for t in range(16):  # a sunny outdoor-like scene: blue sky, green stripes, moving white squares
        img = np.zeros((128, 128, 3), np.uint8)
        img[:60] = (90, 150, 235)
        img[60:] = np.where(((xx[60:] + 3 * t) // 8 % 2)[..., None] == 0, (40, 160, 60), (110, 200, 80))
        img[((xx - 4 * t) % 40 < 10) & (yy < 40)] = 250
        scene.append(img)
    write_video(tmp_path / "scene.mp4", scene, fps=30.0)
    done, frames = _predict(tmp_path / "scene.mp4")
    assert done["ood"]["out_of_domain"], done["ood"]
    assert "unlike the videos this model was trained on" in done["ood"]["message"]
    assert len(frames) == 16 and all("probs" in f for f in frames)  # predictions are not hidden
    endo, _ = _polyp_seed(16, want=0)  # a phantom video like the training data is not flagged
    write_video(tmp_path / "endo.mp4", endo, fps=30.0)
    done, _ = _predict(tmp_path / "endo.mp4")
    assert not done["ood"]["out_of_domain"], done["ood"]
