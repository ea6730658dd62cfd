"""The fine-tune plan behind the dialog (Qt-free): split by video, warnings, budget -> epochs, and which stopped jobs
can be resumed (a killed job too), with clear refusals."""

from __future__ import annotations

import json

import pytest

from endoreview.services.finetune_plan import (
    create_finetune_job,
    create_resume_job,
    label_name,
    plan_finetune,
    resumable_jobs,
    run_dir_of,
    split_videos,
)
from endoreview.store import Store
from endoreview.store.records import JobState, LabelKind, NewLabel, ReviewState


@pytest.fixture
def store(tmp_path):
    from endoreview.services.projects import ProjectService

    s = Store.open(str(tmp_path / "db.sqlite3"), reviewer="tester")
    project = ProjectService(s).default_project()
    ids = []
    for k in range(4):
        v = s.add_video(project.id, path=f"/videos/case{k}.mp4", path_is_relative=False, content_hash=f"h{k}", size_bytes=1, frame_count=30,
                        fps=30.0, width=64, height=64, codec="h264", meta={"name": f"case{k}"})  # fmt: skip
        ids.append(v.id)
    labels = [NewLabel(ids[0], LabelKind.VIDEO_CLASS, "abnormal", state=ReviewState.ACCEPTED)]
    labels += [
        NewLabel(ids[0], LabelKind.BOX, "polyp", frame=f, bbox=(1, 1, 9, 9), state=ReviewState.MANUAL)
        for f in range(12)
    ]
    labels.append(
        NewLabel(ids[1], LabelKind.BOX, "polyp", frame=0, bbox=(1, 1, 9, 9), state=ReviewState.SUGGESTED)
    )
    s.add_labels(labels, "test labels")
    s.ids = ids
    yield s
    s.close()


def test_plan_counts_reviewed_labels_splits_by_video_and_warns(store):
    ids = store.ids
    plan = plan_finetune(store, ids, budget_min=10, device="cpu")
    assert plan.label_counts == {"box/polyp": 12, "video_class/abnormal": 1}  # suggestions do not count
    assert plan.tasks == ("classification", "detection")
    assert sorted(plan.split.values()).count("val") == 1 and set(plan.split) == set(ids)
    assert plan.split == split_videos(ids)  # the same split every time
    text = " ".join(plan.warnings)
    assert "Only 1 reviewed label for abnormal (video class)" in text
    assert "All labels come from one video" in text
    assert "Every video is labelled abnormal" in text
    assert "No GPU" in text and "No starting model" in text
    assert not plan.ok  # no model registered yet
    with pytest.raises(ValueError, match="No starting model"):
        create_finetune_job(store, plan)
    # a bigger budget buys more epochs; a GPU is faster
    assert plan_finetune(store, ids, budget_min=60, device="cpu").epochs > plan.epochs
    gpu = plan_finetune(store, ids, budget_min=10, device="cuda")
    assert gpu.estimated_s / gpu.epochs < plan.estimated_s / plan.epochs  # faster per epoch: more epochs fit
    assert not any("No GPU" in w for w in gpu.warnings)
    assert label_name("mask/polyp") == "polyp (masks)"


def test_resumable_jobs_include_killed_ones_and_refuse_the_rest(store):
    from endoreview.services.jobs import JobService

    js = JobService(store)
    killed = js.create("finetune", video_ids=store.ids, epochs=3)
    store.update_job(killed.id, state=JobState.RUNNING, pid=2**22 + 12345)  # a pid that does not exist
    failed_early = js.create("finetune", video_ids=store.ids)
    store.update_job(failed_early.id, state=JobState.FAILED)
    done = js.create("finetune", video_ids=store.ids)
    store.update_job(done.id, state=JobState.SUCCEEDED)
    run_dir_of(killed).mkdir(parents=True)
    (run_dir_of(killed) / "manifest.json").write_text(json.dumps({}))
    jobs = resumable_jobs(store)
    assert [j.id for j in jobs] == [killed.id]  # the killed job (reaped), not the one without a snapshot
    assert store.get_job(killed.id).state == JobState.FAILED
    new = create_resume_job(store, killed.id)
    assert new.params["resume_of"] == killed.id and new.params["epochs"] == 3 and new.state == JobState.QUEUED
    assert resumable_jobs(store) == []  # already resumed
    with pytest.raises(ValueError, match="data snapshot is gone"):
        create_resume_job(store, failed_early.id)
    with pytest.raises(ValueError, match="only a failed or cancelled"):
        create_resume_job(store, done.id)


def test_the_estimate_comes_from_the_parents_measured_architecture_and_warns_past_twice_the_budget(
    store, tmp_path
):
    """A ViT-B parent fed 8 x 224 px is planned with ViT-B speed (the tiny model's speed offered '19 epochs,
    about 9.5 min' for a job measured at hours): one epoch exceeds a 5-minute budget by far, which is said."""
    from core_model.contract import ModelMeta, read_model_json
    from core_model.finetune.speed import train_seconds_per_clip
    from core_model.models.config import MODEL_CONFIGS

    def register(name: str, arch: str, frames: int, size: int) -> int:
        d = tmp_path / name
        d.mkdir()
        meta = ModelMeta.for_config(
            MODEL_CONFIGS[arch], arch, {"num_frames": frames, "img_size": size, "mean": [0.45] * 3},
            {"classification": {"classes": ["normal", "abnormal"]}},
        )  # fmt: skip
        (d / "model.json").write_text(json.dumps(meta.to_dict()))
        return store.add_model_version(name, architecture=arch, files_dir=str(d)).id

    base = register("base", "endofm_base", 8, 224)
    tiny = register("tiny", "endofm_tiny", 2, 112)
    ids = store.ids
    big = plan_finetune(store, ids, budget_min=5, device="cpu", parent_version=base)
    small = plan_finetune(store, ids, budget_min=5, device="cpu", parent_version=tiny)
    assert big.epochs == 1 and small.epochs > 1
    lo, mid, hi = train_seconds_per_clip(read_model_json(tmp_path / "base").arch, 8, 224, "cpu")
    assert big.extra["seconds_per_clip"] == mid and mid > 20 * small.extra["seconds_per_clip"]
    assert big.estimated_s > 2 * 300
    assert any("more than twice the 5 min budget" in w and "endofm_base" in w for w in big.warnings), (
        big.warnings
    )
    assert not any("more than twice" in w for w in small.warnings)
    text = "\n".join(big.summary_lines())
    assert "range" in text and "Input (inherited from endofm_base parent): 8 frames 32 apart" in text


def test_the_estimate_counts_the_held_out_videos_validation_and_calibration(tmp_path, monkeypatch):
    """Issue 22.8: the estimate ignored the held-out split. Validation runs every frame of the held-out videos each
    epoch and fine-tuning ends with a calibration pass over them: a longer held-out video makes the same job cost
    more, and the planner's clip count is the validation pass's own (``ClipDataset`` evaluation clips)."""
    import endoreview.services.finetune_plan as fp
    from core_model.data.manifest import load_manifest
    from core_model.finetune.config import FinetuneConfig
    from core_model.finetune.data import ClipDataset, build_sequences
    from core_model.finetune.speed import validation_clips
    from endoreview.services.projects import ProjectService
    from tests.core_model.test_finetune_data import make_manifest

    m = make_manifest(tmp_path / "m", n_videos=3, n_frames=13, size=32)
    seqs = build_sequences(load_manifest(m))["val"]
    for tasks, t, stride in ((("segmentation",), 2, 3), (("classification",), 4, 2), (("detection",), 3, 1)):
        cfg = FinetuneConfig(manifest=str(m), tasks=tasks, num_frames=t, frame_stride=stride, img_size=32)
        ds = ClipDataset(
            seqs, cfg, {"video": ("normal", "abnormal"), "mask": ("polyp",), "box": ("polyp",)}, False
        )
        per_frame = tasks[0] != "classification"
        assert validation_clips([s.length for s in seqs], t, stride, per_frame) == len(ds), tasks

    def plan_with(val_frames: int):
        s = Store.open(str(tmp_path / f"db{val_frames}.sqlite3"), reviewer="tester")
        project = ProjectService(s).default_project()
        ids = []
        for k in range(5):
            n = 30 if k else val_frames
            v = s.add_video(project.id, path=f"/v/c{k}.mp4", path_is_relative=False, content_hash=f"h{k}", size_bytes=1,
                            frame_count=n, fps=30.0, width=64, height=64, codec="h264", meta={"name": f"c{k}"})  # fmt: skip
            ids.append(v.id)
            s.add_labels([NewLabel(v.id, LabelKind.VIDEO_CLASS, "abnormal" if k % 2 else "normal",
                                   state=ReviewState.ACCEPTED)])  # fmt: skip
        split = {i: ("val" if i == ids[0] else "train") for i in ids}
        monkeypatch.setattr(fp, "split_videos", lambda vids, val_fraction=0.2: split)
        return plan_finetune(s, ids, budget_min=600, device="cpu", tasks=["classification"])

    short, long = plan_with(30), plan_with(3000)
    assert long.extra["validation_clips"] > short.extra["validation_clips"] > 0
    assert long.extra["calibration_clips"] > short.extra["calibration_clips"] > 0
    assert long.estimated_s / long.epochs > short.estimated_s / short.epochs
