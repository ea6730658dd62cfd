"""``python -m endoreview.jobs finetune``: reviewed labels in the store become a new registered model version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endoreview.store import Store
from endoreview.store.records import LabelKind, NewLabel


def _starting_model(path: Path) -> Path:
    from core_model.checkpoint import save_model_dir
    from core_model.models import create_model

    return save_model_dir(path, create_model("endofm_tiny"), arch="endofm_tiny", preprocess={"img_size": 32})


def _load_library(store: Store, manifest_path: Path) -> list[int]:
    from endoreview.services.library import LibraryService
    from endoreview.services.projects import ProjectService

    project = ProjectService(store).create_project("ft")
    lib = LibraryService(store)
    data = json.loads(manifest_path.read_text())
    ids = []
    for v in data["videos"]:
        video, _ = lib.import_video(project.id, manifest_path.parent / v["path"])
        ids.append(video.id)
        new = [NewLabel(video.id, LabelKind.VIDEO_CLASS, v["video_label"])]
        for f in v["frames"]:
            for m in f.get("masks", []):
                new.append(
                    NewLabel(video.id, LabelKind.MASK, "polyp", frame=f["frame"], rle=m["rle"], track_id=1)
                )
            for b in f.get("boxes", []):
                new.append(
                    NewLabel(
                        video.id, LabelKind.BOX, "polyp", frame=f["frame"], bbox=tuple(b["bbox"]), track_id=1
                    )
                )
        store.add_labels(new, "test labels")
    return ids


@pytest.mark.slow
def test_finetune_job_registers_a_child_version(tmp_path, capsys):
    from endoreview.jobs.__main__ import main as jobs_main
    from endoreview.services.registry import RegistryService
    from tests.core_model.test_finetune_data import make_manifest

    db = str(tmp_path / "db.sqlite3")
    manifest = make_manifest(tmp_path / "videos", n_videos=4, n_frames=8, size=32, label_every=2)
    store = Store.open(db, reviewer="tester")
    ids = _load_library(store, manifest)
    reg = RegistryService(store)
    parent = reg.register(_starting_model(tmp_path / "start"), name="start", activate=True)
    store.close()
    split = json.dumps({str(i): ("val" if k == 0 else "train") for k, i in enumerate(ids)})
    rc = jobs_main(
        [
            "finetune", "--db", db, "--split", split, "--epochs", "1", "--tasks", "segmentation,detection",
            "--set", "num_frames=2", "--set", "img_size=32", "--set", "frame_stride=1", "--set", "clips_per_video=1",
            "--set", 'head_config={"detection":{"fpn_channels":32,"num_convs":1},"segmentation":{"decoder_channels":[16,16,16,16]}}',
            "--name", "hospital-v2", "--activate",
        ]
        + [x for i in ids for x in ("--video-id", str(i))]
    )  # fmt: skip
    assert rc == 0
    store = Store.open(db)
    reg = RegistryService(store)
    mv = reg.get("hospital-v2")
    assert mv.parent_id == parent.id and mv.is_active
    assert mv.data_snapshot["video_ids"] == ids and mv.data_snapshot["splits"]["val"] == [str(ids[0])]
    assert "segmentation/dice_seq" in mv.metrics["val"]
    assert mv.hyperparameters["tasks"] == ["segmentation", "detection"]
    assert (Path(mv.files_dir) / "model.json").is_file()
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert events[0]["event"] == "started" and events[-1]["event"] == "done"
    assert events[-1]["state"] == "succeeded" and events[-1]["result"]["model_version_id"] == mv.id
    assert any(e["event"] == "progress" and "epoch 1/1" in e.get("message", "") for e in events)
    job = store.get_job(events[-1]["job"])
    assert job.state == "succeeded" and job.result["model_version_id"] == mv.id
    store.close()


def test_the_jobs_time_budget_reaches_the_engine_less_the_time_already_spent(tmp_path):
    """Issue 22.8: the dialog's budget was never passed on, so a 3-minute budget ran 8 minutes. The job hands the
    engine ``--time-budget-min``: the budget less what the job spent before training (the snapshot)."""
    import time

    from core_model.finetune.cli import build_config, build_parser
    from endoreview.jobs.finetune import finetune_command

    m, out = tmp_path / "m.json", tmp_path / "run"
    cmd = finetune_command(m, out, "model", ["classification"], {"budget_min": 3.0}, time.time() - 30)
    i = cmd.index("--time-budget-min")
    assert 2.3 <= float(cmd[i + 1]) <= 2.5
    args = cmd[cmd.index("finetune") + 1 :]
    assert build_config(build_parser().parse_args(args)).time_budget_s == pytest.approx(
        float(cmd[i + 1]) * 60
    )
    assert "--time-budget-min" not in finetune_command(m, out, "model", ["classification"], {})
