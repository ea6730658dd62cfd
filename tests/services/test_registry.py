"""The model registry as a user meets it: register, activate, roll back, delete, compare, import."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from endoreview.services.registry import RegistryError, RegistryService
from endoreview.store import Store


def fake_model_dir(path: Path, arch: str = "endofm_tiny", metrics: dict | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"\0" * 16)
    meta = {
        "format": "endoreview-model",
        "format_version": 1,
        "arch": {"name": arch, "config": {}},
        "preprocess": {  # format 1, as the registry's older models have it (migrated on read)
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "num_frames": 2,
            "img_size": 112,
            "frame_stride": 2,
        },
        "heads": {"segmentation": {"classes": ["polyp"]}},
        "provenance": {
            "kind": "finetune",
            "manifest": "/data/m.json",
            "manifest_sha256_16": "abcd",
            "config": {"lr": 5e-4, "epochs": 3},
            "metrics": metrics or {"test": {"segmentation/dice_seq": 0.5}},
        },
        "weights": {"file": "model.safetensors", "sha256": "x", "dtype": "float16"},
    }
    (path / "model.json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def reg(tmp_path) -> RegistryService:
    store = Store.open(str(tmp_path / "db.sqlite3"), reviewer="tester")
    yield RegistryService(store)
    store.close()


def test_register_copies_files_and_records_provenance(reg, tmp_path):
    src = fake_model_dir(tmp_path / "run" / "model")
    mv = reg.register(src, name="hospital-v1", activate=True)
    assert mv.is_active and mv.name == "hospital-v1" and mv.architecture == "endofm_tiny"
    assert Path(mv.files_dir).parent == reg.root and (Path(mv.files_dir) / "model.json").is_file()
    assert mv.hyperparameters == {"lr": 5e-4, "epochs": 3}
    assert mv.data_snapshot["manifest_sha256_16"] == "abcd"
    assert mv.metrics["test"]["segmentation/dice_seq"] == 0.5
    assert mv.created_at is not None
    with pytest.raises(RegistryError, match="already exists"):
        reg.register(src, name="hospital-v1")


def test_activate_rollback_delete(reg, tmp_path):
    v1 = reg.register(fake_model_dir(tmp_path / "a"), name="v1", activate=True)
    v2 = reg.register(fake_model_dir(tmp_path / "b"), name="v2", parent_id=v1.id, activate=True)
    assert reg.active().id == v2.id
    assert [m.name for m in reg.lineage("v2")] == ["v2", "v1"]
    with pytest.raises(RegistryError, match="active model"):
        reg.delete(v2.id)
    assert reg.rollback().id == v1.id
    assert not reg.get(v2.id).is_active
    with pytest.raises(RegistryError, match="no parent"):
        reg.rollback()
    reg.delete("v2")
    assert not Path(v2.files_dir).exists()  # owned files go with it
    assert [m.name for m in reg.list()] == ["v1"]


def test_register_refuses_what_is_not_a_model(reg, tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(RegistryError, match="model.json missing"):
        reg.register(tmp_path / "junk")
    d = fake_model_dir(tmp_path / "noweights")
    (d / "model.safetensors").unlink()
    with pytest.raises(RegistryError, match="weights file"):
        reg.register(d)
    assert reg.list() == []
    assert not any(reg.root.iterdir())  # nothing half-copied


def test_delete_never_removes_files_the_registry_does_not_own(reg, tmp_path):
    d = fake_model_dir(tmp_path / "bundled")
    mv = reg.register(d, name="demo", copy=False)
    reg.delete(mv.id)
    assert (d / "model.json").is_file()


def test_compare_lists_metric_changes_and_disagreeing_frames(reg, tmp_path):
    a = reg.register(fake_model_dir(tmp_path / "a"), name="a")
    reg.register(fake_model_dir(tmp_path / "b"), name="b")
    results = {
        "a": {
            "metrics": {"detection/f1": 0.5, "segmentation/dice_seq": 0.4},
            "frames": {
                "v1": {"3": {"det_hit": True, "mask_pixels": 10, "dice": 0.8}, "4": {"det_hit": False}}
            },
        },
        "b": {
            "metrics": {"detection/f1": 0.7, "segmentation/dice_seq": 0.6},
            "frames": {
                "v1": {"3": {"det_hit": True, "mask_pixels": 12, "dice": 0.75}, "4": {"det_hit": True}}
            },
        },
    }
    cmp = reg.compare(a.id, "b", "m.json", evaluator=lambda mv, m, s: results[mv.name], record=True)
    rows = {r.metric: r for r in cmp.rows}
    assert rows["detection/f1"].delta == pytest.approx(0.2)
    assert [(d.video, d.frame, d.reason) for d in cmp.disagreements] == [
        ("v1", 4, "detection on one side only")
    ]
    assert "detection/f1" in cmp.table()
    assert reg.get("b").metrics["evaluations"][-1]["metrics"]["detection/f1"] == 0.7


def test_import_official_reports_a_file_that_is_not_a_checkpoint(reg, tmp_path):
    bad = tmp_path / "holiday.pth"
    bad.write_bytes(b"not a checkpoint")

    def runner(cmd):
        assert cmd[-3:] == [str(bad), "-o", cmd[-2]] or "convert" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "endofm convert: holiday.pth: not a PyTorch file\n")

    with pytest.raises(
        RegistryError, match="holiday.pth is not a usable Endo-FM checkpoint: holiday.pth: not a"
    ):
        reg.import_official(bad, runner=runner)
    assert reg.list() == []
    with pytest.raises(RegistryError, match="no such file"):
        reg.import_official(tmp_path / "missing.pth")


def test_import_official_registers_the_converted_model(reg, tmp_path):
    src = tmp_path / "endo_fm.pth"
    src.write_bytes(b"x")

    def runner(cmd):
        out = Path(cmd[cmd.index("-o") + 1])
        fake_model_dir(out, arch="endofm_base")
        return subprocess.CompletedProcess(cmd, 0, "converted", "")

    mv = reg.import_official(src, activate=True, runner=runner)
    assert mv.name == "endo_fm" and mv.architecture == "endofm_base" and mv.is_active
    assert "endo_fm.pth" in mv.notes
