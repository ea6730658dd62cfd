"""The checkpoint converter and the model directory: every official layout (built from random weights with the same
Python types the official scripts save), exact key checks, refused foreign/malicious/truncated files."""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import pickle
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.checkpoint import (
    CheckpointError,
    ModelMeta,
    load_backbone_state_dict,
    load_model_dir,
    safe_torch_load,
    save_model_dir,
)
from core_model.models import EndoFM, EndoFMConfig, create_model

CFG = EndoFMConfig(embed_dim=32, depth=2, num_heads=2, img_size=32, num_frames=4)


@pytest.fixture(scope="module")
def backbone() -> EndoFM:
    torch.manual_seed(0)
    m = EndoFM(CFG)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m.eval()


def dino_head(dim: int = 32) -> dict[str, torch.Tensor]:
    return {
        "head.mlp.0.weight": torch.randn(64, dim),
        "head.mlp.0.bias": torch.randn(64),
        "head.mlp.2.weight": torch.randn(64, 64),
        "head.mlp.2.bias": torch.randn(64),
        "head.mlp.4.weight": torch.randn(16, 64),
        "head.mlp.4.bias": torch.randn(16),
        "head.last_layer.weight_g": torch.ones(128, 1),
        "head.last_layer.weight_v": torch.randn(128, 16),
    }


class DINOHead(torch.nn.Module):
    """The official head's layout (mlp.0/2/4, weight-normed last_layer with weight_g/weight_v)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, 64),
            torch.nn.GELU(),
            torch.nn.Linear(64, 64),
            torch.nn.GELU(),
            torch.nn.Linear(64, 16),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy weight_norm: the naming the official files carry
            self.last_layer = torch.nn.utils.weight_norm(torch.nn.Linear(16, 128, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(torch.nn.functional.normalize(self.mlp(x), dim=-1))


class MultiCrop(torch.nn.Module):
    def __init__(self, backbone: EndoFM) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = DINOHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class DDP(torch.nn.Module):
    """State-dict layout of DistributedDataParallel: everything under ``module.``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


def official_pretrain(m: EndoFM) -> dict:
    """train_ssl.py's dict (reference §2.3): teacher (backbone./head.), DDP student (module.), args Namespace, ..."""
    wrapper = MultiCrop(copy.deepcopy(m))
    with torch.no_grad():
        for k, v in dino_head().items():
            wrapper.get_parameter(k).copy_(v)
    teacher = wrapper.state_dict()  # an OrderedDict with _metadata, as the official file holds
    student_wrapper = MultiCrop(copy.deepcopy(m))
    student_wrapper.load_state_dict(teacher)
    student = DDP(student_wrapper).state_dict()
    trained = MultiCrop(copy.deepcopy(m))  # a throwaway model gives the optimizer real state (exp_avg, step)
    opt = torch.optim.AdamW(trained.parameters(), lr=5e-4)
    trained(torch.randn(1, 3, 4, 32, 32)).sum().backward()
    opt.step()
    scaler = torch.amp.GradScaler("cpu")
    return {
        "student": student,
        "teacher": teacher,
        "motion_student": 0,
        "motion_teacher": 0,
        "optimizer": opt.state_dict(),
        "epoch": 31,
        "args": argparse.Namespace(arch="timesformer", out_dim=65536, lr=0.0005, data_path="./data/pretrain"),
        "dino_loss": {"center": torch.zeros(1, 16)},
        "fp16_scaler": scaler.state_dict(),
    }


def polypdiag(m: EndoFM, best_f1) -> dict:
    """eval_finetune.py's checkpoint.pth.tar (reference §2.4): DDP classifier + DDP backbone, numpy best_f1."""
    return {
        "epoch": 12,
        "state_dict": {"module.linear.weight": torch.randn(2, 32), "module.linear.bias": torch.randn(2)},
        "backbone_state_dict": {f"module.{k}": v.clone() for k, v in m.state_dict().items()},
        "optimizer": torch.optim.SGD(
            [torch.nn.Parameter(torch.zeros(2))], lr=1e-3, momentum=0.9
        ).state_dict(),
        "scheduler": {"T_max": 20, "eta_min": 0, "base_lrs": [0.001], "last_epoch": 12},
        "best_f1": best_f1,
    }


class _LegacyNumpyPickler(pickle._Pickler):
    """Writes NumPy's scalar reconstructor as ``numpy.core.multiarray.scalar``, as NumPy 1.x (the official py3.7
    environment) did, so files look exactly like the released ones."""

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        qual = name or getattr(obj, "__qualname__", None)
        if module == "numpy._core.multiarray" and qual == "scalar":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


LEGACY = types.SimpleNamespace(
    Pickler=_LegacyNumpyPickler, Unpickler=pickle.Unpickler, __name__="legacy_pickle"
)


def assert_same_backbone(sd, m: EndoFM) -> None:
    ref = m.state_dict()
    assert set(sd) == set(ref)
    for k, v in ref.items():
        assert torch.equal(sd[k].float(), v.float()), k


def test_official_pretraining_dict_uses_teacher_and_drops_dino_head(tmp_path, backbone):
    path = tmp_path / "endo_fm.pth"
    obj = official_pretrain(backbone)
    obj["student"] = {k: torch.zeros_like(v) for k, v in obj["student"].items()}  # teacher must win
    torch.save(obj, path)
    sd = load_backbone_state_dict(path)
    assert sd.source == "official-pretrain" and sd.classifier is None
    assert_same_backbone(sd, backbone)
    assert set(sd.extra) == set(dino_head())  # available to pretraining, never loaded into the backbone
    # create_model goes through the same converter and gives the same numbers
    m = create_model(
        "endofm_tiny", checkpoint=path, embed_dim=32, depth=2, num_heads=2, img_size=32, num_frames=4
    )
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), backbone(x))


def test_student_only_and_flat_layouts(tmp_path, backbone):
    obj = official_pretrain(backbone)
    torch.save({"student": obj["student"], "epoch": 3}, tmp_path / "student.pth")
    sd = load_backbone_state_dict(tmp_path / "student.pth")
    assert sd.source == "official-student"
    assert_same_backbone(sd, backbone)
    # a flat backbone state dict, as is; with backbone.+head. (SVT Kinetics init); a model_state wrapper
    flat = backbone.state_dict()
    for obj2 in (flat, obj["teacher"], {"model_state": {f"backbone.{k}": v for k, v in flat.items()}}):
        torch.save(obj2, tmp_path / "x.pth")
        assert_same_backbone(load_backbone_state_dict(tmp_path / "x.pth"), backbone)
    # objects already in memory work too
    assert_same_backbone(load_backbone_state_dict(obj), backbone)


@pytest.mark.parametrize("legacy_numpy", [False, True])
def test_polypdiag_file_with_numpy_scalars_and_its_classifier(tmp_path, backbone, legacy_numpy):
    path = tmp_path / "polypdiag.pth"
    obj = polypdiag(backbone, np.float64(0.915))
    obj["val_history"] = [np.float32(0.8), np.int64(3)]
    if legacy_numpy:
        torch.save(obj, path, pickle_module=LEGACY)
        assert b"numpy.core.multiarray" in _data_pkl(path)
    else:
        torch.save(obj, path)
        assert b"numpy._core.multiarray" in _data_pkl(path)
    sd = load_backbone_state_dict(path)
    assert sd.source == "polypdiag"
    assert_same_backbone(sd, backbone)
    assert torch.equal(sd.classifier["weight"], obj["state_dict"]["module.linear.weight"])
    assert torch.equal(sd.classifier["bias"], obj["state_dict"]["module.linear.bias"])
    assert float(safe_torch_load(path)["best_f1"]) == pytest.approx(0.915)


def _data_pkl(path: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"teacher": {"backbone.cls_token": torch.zeros(1)}, "args": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refused.*'(posix|os|nt)\.system'"):
        load_backbone_state_dict(path)
    assert not marker.exists()
    # any other class outside the allow-list is named too
    import datetime

    torch.save({"teacher": {}, "when": datetime.datetime(2024, 1, 1)}, path)
    with pytest.raises(CheckpointError, match="'datetime.datetime'"):
        load_backbone_state_dict(path)


def test_truncated_empty_and_garbage_files(tmp_path, backbone):
    good = tmp_path / "good.pth"
    torch.save(official_pretrain(backbone), good)
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pth: truncated or corrupt"):
        load_backbone_state_dict(tmp_path / "trunc.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth: the file is empty"):
        load_backbone_state_dict(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("this is not a checkpoint\n" * 20)
    with pytest.raises(CheckpointError, match=r"text\.pth"):
        load_backbone_state_dict(tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_backbone_state_dict(tmp_path / "missing.pth")


def test_wrong_prefix_missing_and_unexpected_keys_are_named(tmp_path, backbone):
    sd = backbone.state_dict()
    torch.save({f"encoder.{k}": v for k, v in sd.items()}, tmp_path / "prefixed.pth")
    with pytest.raises(CheckpointError, match=r"prefixed\.pth.*prefixed with 'encoder\.'"):
        load_backbone_state_dict(tmp_path / "prefixed.pth")
    expected = list(sd)
    with pytest.raises(CheckpointError, match=r"2 missing \['blocks\.1\.norm2\.bias', 'time_embed'\]"):
        load_backbone_state_dict(
            {k: v for k, v in sd.items() if k not in ("time_embed", "blocks.1.norm2.bias")}
        )
    with pytest.raises(CheckpointError, match=r"1 unexpected \['blocks\.0\.extra\.weight'\]"):
        load_backbone_state_dict(sd | {"blocks.0.extra.weight": torch.zeros(1)}, expected_keys=expected)
    # teacher with the wrong inner prefix leaves nothing random: it fails
    torch.save({"teacher": {f"model.{k}": v for k, v in sd.items()}}, tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match="prefixed with 'model.'"):
        load_backbone_state_dict(tmp_path / "t.pth")
    # a model of another depth
    with pytest.raises(CheckpointError, match="missing"):
        create_model(
            "endofm_tiny", checkpoint=sd, embed_dim=32, depth=3, num_heads=2, img_size=32, num_frames=4
        )
    # same keys, other frame count: shapes named
    with pytest.raises(CheckpointError, match=r"time_embed: checkpoint \(1, 4, 32\) vs model \(1, 8, 32\)"):
        create_model(
            "endofm_tiny", checkpoint=sd, embed_dim=32, depth=2, num_heads=2, img_size=32, num_frames=8
        )


def test_paper_segmentation_and_detection_checkpoints_are_refused(tmp_path):
    cvc = {
        "transformer.embeddings.hybrid_model.root.conv.weight": torch.zeros(64, 3, 7, 7),
        "transformer.embeddings.patch_embeddings.weight": torch.zeros(8, 1024, 1, 1),
        "transformer.encoder.layer.0.norm1.weight": torch.zeros(8),
        "decoder.conv_more.0.weight": torch.zeros(4, 8, 3, 3),
        "segmentation_head.0.weight": torch.zeros(2, 16, 3, 3),
    }
    torch.save(cvc, tmp_path / "cvc.pth")
    with pytest.raises(CheckpointError, match=r"cvc\.pth: this is a TransUNet.*different architecture"):
        load_backbone_state_dict(tmp_path / "cvc.pth")
    kumc = {
        "model": {
            "module.backbone.body.blocks.0.norm1.weight": torch.zeros(8),
            "module.backbone.fpn.fpn_inner2.weight": torch.zeros(4, 8, 1, 1),
            "module.rpn.head.cls_tower.0.weight": torch.zeros(4, 4, 3, 3),
        },
        "iteration": 96000,
    }
    torch.save(kumc, tmp_path / "kumc.pth")
    with pytest.raises(
        CheckpointError, match=r"kumc\.pth: this is an FCOS/STFT detection.*different architecture"
    ):
        load_backbone_state_dict(tmp_path / "kumc.pth")


@pytest.mark.parametrize("fp16", [False, True])
def test_model_dir_round_trip(tmp_path, backbone, fp16):
    meta = ModelMeta.for_config(CFG, "custom", {"frame_stride": 4}, provenance={"note": "test"})
    d = save_model_dir(tmp_path / "model", backbone, meta, fp16=fp16)
    assert sorted(p.name for p in d.iterdir()) == ["model.json", "model.safetensors"]
    state, meta2 = load_model_dir(d)
    assert (
        meta2.config == CFG and meta2.preprocess["frame_stride"] == 4 and meta2.preprocess["clip_stride"] == 8
    )
    assert meta2.preprocess["num_frames"] == 4 and meta2.provenance == {"note": "test"}
    assert all(v.dtype == (torch.float16 if fp16 else torch.float32) for v in state.values())
    m = create_model(
        "endofm_tiny",
        checkpoint=d,
        **{k: getattr(CFG, k) for k in ("embed_dim", "depth", "num_heads", "img_size", "num_frames")},
    )
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), backbone(x), atol=2e-2 if fp16 else 0, rtol=0)
    on_disk = json.loads((d / "model.json").read_text())
    assert on_disk["format"] == "endoreview-model" and on_disk["format_version"] == 2
    assert on_disk["arch"]["config"]["embed_dim"] == 32
    assert oct((d / "model.json").stat().st_mode & 0o777) != oct(0o600)


def test_model_dir_keyword_form_and_task_model_layout(tmp_path, backbone):
    """``save_model_dir(dir, module, arch=..., preprocess=..., provenance=...)`` and a backbone+heads module."""
    d = save_model_dir(
        tmp_path / "a", backbone, arch="custom", preprocess={"mean": [0.5] * 3}, provenance={"run": 1}
    )
    _, meta = load_model_dir(d)
    assert meta.arch_name == "custom" and meta.preprocess["mean"] == [0.5] * 3
    assert meta.preprocess["std"] == [0.229, 0.224, 0.225] and meta.preprocess["img_size"] == 32

    class TaskModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.heads = torch.nn.ModuleDict({"classification": torch.nn.Linear(32, 3)})

    d = save_model_dir(tmp_path / "b", TaskModel(), heads={"classification": {"classes": ["a", "b", "c"]}})
    sd = load_backbone_state_dict(d)
    assert sd.source == "model-dir" and sd.meta.heads["classification"]["classes"] == ["a", "b", "c"]
    assert_same_backbone(sd, backbone)
    assert set(sd.extra) == {"heads.classification.weight", "heads.classification.bias"}


def test_model_dir_damage_is_reported(tmp_path, backbone):
    d = save_model_dir(tmp_path / "m", backbone, arch="custom")
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="hash differs"):
        load_model_dir(d)
    with pytest.raises(CheckpointError, match="truncated or corrupt safetensors"):
        load_model_dir(d, verify=False)
    save_model_dir(d, backbone, arch="custom")
    meta = json.loads((d / "model.json").read_text())
    (d / "model.json").write_text(json.dumps(meta | {"format_version": 3}))
    with pytest.raises(CheckpointError, match="newer EndoReview"):
        load_model_dir(d)
    (d / "model.json").write_text(json.dumps(meta | {"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an EndoReview model"):
        load_model_dir(d)
    (d / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable model metadata"):
        load_model_dir(d)
    (d / "model.json").unlink()
    with pytest.raises(CheckpointError, match="model.json missing"):
        load_model_dir(d)
    bad = meta | {"arch": {"name": "x", "config": {"embed_dim": 32, "wings": 2}}}
    (d / "model.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="unknown EndoFMConfig field.*wings"):
        load_model_dir(d)


def test_safe_load_keeps_plain_python_containers(tmp_path):
    buf = io.BytesIO()
    torch.save({"a": [1, 2.5, "x", (True, None)], "t": torch.arange(3)}, buf)
    (tmp_path / "plain.pth").write_bytes(buf.getvalue())
    obj = safe_torch_load(tmp_path / "plain.pth")
    assert obj["a"] == [1, 2.5, "x", (True, None)] and obj["t"].tolist() == [0, 1, 2]
