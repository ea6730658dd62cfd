"""``endofm convert``: official pre-training and PolypDiag files -> model directories a user can load."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from core_model.checkpoint import load_backbone_state_dict, load_model_dir
from core_model.checkpoint_cli import main
from core_model.cli import main as endofm_main
from core_model.models import EndoFM, EndoFMConfig, create_model

CFG = EndoFMConfig(embed_dim=32, depth=2, num_heads=2, img_size=32, num_frames=4)
TINY = EndoFMConfig(embed_dim=192, depth=6, num_heads=3, img_size=112)


def random_backbone(cfg: EndoFMConfig, seed: int = 0) -> EndoFM:
    torch.manual_seed(seed)
    m = EndoFM(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    return m.eval()


def test_convert_official_pretraining_file(tmp_path, capsys):
    src_model = random_backbone(TINY)
    teacher = {f"backbone.{k}": v for k, v in src_model.state_dict().items()}
    teacher["head.last_layer.weight_v"] = torch.randn(8, 4)
    torch.save(
        {"teacher": teacher, "epoch": 31, "args": argparse.Namespace(arch="timesformer")}, tmp_path / "e.pth"
    )
    assert endofm_main(["convert", str(tmp_path / "e.pth"), "-o", str(tmp_path / "model")]) == 0
    assert "converted" in capsys.readouterr().out
    state, meta = load_model_dir(tmp_path / "model")
    assert meta.arch_name == "endofm_tiny" and meta.config == TINY  # recognised from the shapes
    assert meta.preprocess == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "num_frames": 8,
        "img_size": 112,
        "frame_stride": 32,
        "clip_stride": 128,
    }
    assert (
        meta.provenance["source_layout"] == "official-pretrain"
        and len(meta.provenance["source_sha256"]) == 64
    )
    assert meta.heads == {}
    m = create_model("endofm_tiny", checkpoint=tmp_path / "model").eval()
    x = torch.randn(1, 3, 8, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src_model(x))
    # again without --force: refused, nothing overwritten
    assert main([str(tmp_path / "e.pth"), "-o", str(tmp_path / "model")]) == 1
    assert "--force" in capsys.readouterr().err
    # fp16 and custom sampling
    assert (
        main(
            [
                str(tmp_path / "e.pth"),
                "-o",
                str(tmp_path / "m16"),
                "--fp16",
                "--frame-stride",
                "4",
                "--clip-stride",
                "8",
                "--no-check",
            ]
        )
        == 0
    )
    state16, meta16 = load_model_dir(tmp_path / "m16")
    assert next(iter(state16.values())).dtype == torch.float16
    assert (meta16.preprocess["frame_stride"], meta16.preprocess["clip_stride"]) == (4, 8)
    assert (tmp_path / "m16" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "model" / "model.safetensors"
    ).stat().st_size


def test_convert_polypdiag_keeps_its_classifier_as_a_head(tmp_path):
    src = random_backbone(CFG, 1)
    w, b = torch.randn(2, 32), torch.randn(2)
    obj = {
        "epoch": 9,
        "state_dict": {"module.linear.weight": w, "module.linear.bias": b},
        "backbone_state_dict": {f"module.{k}": v for k, v in src.state_dict().items()},
        "best_f1": np.float64(0.9),
    }
    torch.save(obj, tmp_path / "polypdiag.pth")
    assert main([str(tmp_path / "polypdiag.pth"), "-o", str(tmp_path / "m"), "--num-heads", "2"]) == 0
    state, meta = load_model_dir(tmp_path / "m")
    assert meta.heads == {
        "classification": {"classes": ["normal", "abnormal"], "multi_label": False, "dropout": 0.0}
    }
    assert meta.preprocess["mean"] == [0.45] * 3 and meta.preprocess["std"] == [0.225] * 3
    assert torch.equal(state["heads.classification.linear.weight"], w)
    assert torch.equal(state["heads.classification.linear.bias"], b)
    # the backbone part reads back through the converter
    sd = load_backbone_state_dict(tmp_path / "m")
    assert torch.equal(sd["cls_token"], src.cls_token.detach())
    # PolypDiag logits = linear(final-norm CLS), as eval_finetune.py computes them
    x = torch.randn(2, 3, 4, 32, 32)
    m = EndoFM(CFG).eval()
    m.load_state_dict(sd)
    with torch.no_grad():
        logits = torch.nn.functional.linear(
            m(x), state["heads.classification.linear.weight"], state["heads.classification.linear.bias"]
        )
        torch.testing.assert_close(logits, torch.nn.functional.linear(src(x), w, b))


def test_convert_errors_are_clear(tmp_path, capsys):
    src = random_backbone(CFG, 2)
    torch.save({"teacher": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "c.pth")
    # width 32 matches no named size: the head count must be given
    assert main([str(tmp_path / "c.pth"), "-o", str(tmp_path / "m")]) == 1
    assert "--num-heads" in capsys.readouterr().err
    assert main([str(tmp_path / "c.pth"), "-o", str(tmp_path / "m"), "--model", "endofm_base"]) == 1
    assert "endofm_base is 768/12" in capsys.readouterr().err
    torch.save({"transformer.encoder.layer.0.norm1.weight": torch.zeros(4)}, tmp_path / "cvc.pth")
    assert main([str(tmp_path / "cvc.pth"), "-o", str(tmp_path / "m")]) == 1
    assert "TransUNet" in capsys.readouterr().err
    assert main([str(tmp_path / "nope.pth"), "-o", str(tmp_path / "m")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "m" / "model.json").exists()
    with pytest.raises(SystemExit):
        main(["only-source"])  # -o is required


def test_convert_fixture_of_the_official_code(tmp_path):
    """The official-layout fixture converts and keeps its numbers (skipped without ../shared)."""
    from pathlib import Path

    ckpt = (
        Path(__file__).resolve().parents[2].parent
        / "shared"
        / "fixtures"
        / "endofm-parity"
        / "official_small_checkpoint.pth"
    )
    if not ckpt.is_file():
        pytest.skip(f"parity fixture not found at {ckpt}")
    assert main([str(ckpt), "-o", str(tmp_path / "m"), "--num-heads", "3", "--no-check"]) == 0
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["arch"]["config"]["embed_dim"] == 96 and meta["arch"]["config"]["num_heads"] == 3
    sd = load_backbone_state_dict(tmp_path / "m")
    ref = load_backbone_state_dict(ckpt)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
