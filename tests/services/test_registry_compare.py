"""``endoreview models`` with real models: two fine-tuned versions compared on the same held-out videos."""

from __future__ import annotations

import json

import pytest

from endoreview.services.models_cli import main as models_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_models_cli_register_list_compare_activate_rollback(tmp_path, capsys):
    from core_model.finetune.config import FinetuneConfig
    from core_model.finetune.run import finetune
    from tests.core_model.test_finetune_data import make_manifest

    manifest = make_manifest(tmp_path / "data", n_videos=4, n_frames=8, size=64)
    common = dict(
        manifest=str(manifest),
        tasks=("segmentation",),
        num_frames=2,
        img_size=32,
        frame_stride=2,
        clips_per_video=1,
        head_config={"segmentation": {"decoder_channels": [16, 16, 16, 16]}},
    )
    a = finetune(FinetuneConfig(out_dir=str(tmp_path / "a"), epochs=1, **common))
    b = finetune(FinetuneConfig(out_dir=str(tmp_path / "b"), epochs=2, lr=2e-3, **common))
    db = ["--db", str(tmp_path / "db.sqlite3")]
    assert models_main([*db, "register", a.model_dir, "--name", "first", "--activate"]) == 0
    assert (
        models_main([*db, "register", b.model_dir, "--name", "second", "--parent", "first", "--activate"])
        == 0
    )
    capsys.readouterr()
    assert models_main([*db, "list"]) == 0
    listing = capsys.readouterr().out
    assert "* " in listing.splitlines()[-1] and "second" in listing and "parent 1" in listing
    out = tmp_path / "cmp.json"
    rc = models_main(
        [*db, "compare", "first", "second", "--manifest", str(manifest), "--split", "val", "--out", str(out)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "segmentation/dice_seq" in printed and "frames/videos disagree" in printed
    cmp = json.loads(out.read_text())
    assert {r["metric"] for r in cmp["metrics"]} >= {
        "segmentation/dice_seq",
        "segmentation/dice_frame_strict",
    }
    assert all(d["video"] in ("vid02", "vid03") for d in cmp["disagreements"])
    assert models_main([*db, "rollback"]) == 0
    assert "active model: first" in capsys.readouterr().out
    assert models_main([*db, "delete", "first"]) == 1
    assert "activate another version" in capsys.readouterr().err
    assert models_main([*db, "import", str(tmp_path / "nothing.pth")]) == 1
    assert "no such file" in capsys.readouterr().err
