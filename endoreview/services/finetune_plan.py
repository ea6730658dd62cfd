"""Planning a fine-tune from the app, as plain Python (no Qt, no torch at import): what the dialog summarises and
the job row it starts.

```python
plan = plan_finetune(store, video_ids, tasks=None, budget_min=20, device="auto", parent_version=None)
plan.label_counts     # {"video_class/abnormal": 3, "mask/polyp": 41, ...} reviewed labels per kind/class
plan.per_video        # {video_id: {"mask/polyp": 12, ...}}
plan.split            # {video_id: "train"|"val"}: held out by video, never by frame
plan.warnings         # ["Only 2 reviewed labels for mask/polyp …", "All labels come from one video …", "No GPU …"]
plan.epochs, plan.estimated_s
job = create_finetune_job(store, plan, name=None, activate=False)   # a queued ``finetune`` job row
launch = JobService(store).launch(job, "Fine-tune")                # argv + environment to start it with
```

Resuming: a fine-tune job that failed, was cancelled or whose process was killed keeps its run folder
(``<data dir>/runs/job-<id>/``: the manifest snapshot and the last epoch's ``checkpoint.pth``).
:func:`resumable_jobs` lists such jobs and :func:`create_resume_job` makes a queued job for
``python -m endoreview.jobs finetune --job-id NEW`` whose ``resume_of`` continues the run with ``--resume`` (or
restarts it on the same data snapshot when no epoch had finished) and registers the result like a first run does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core_model.contract import CheckpointError, read_model_json
from core_model.finetune.speed import (
    calibration_clips,
    run_overhead_s,
    train_seconds_per_clip,
    validation_clips,
)
from endoreview.store.errors import NotFoundError
from endoreview.store.records import Job, JobState, ReviewState, ReviewStatus

if TYPE_CHECKING:
    from endoreview.store import Store

log = logging.getLogger(__name__)


POSITIVE = (ReviewState.ACCEPTED, ReviewState.EDITED, ReviewState.MANUAL)
KIND_TASKS = {
    "video_class": ("classification",),
    "mask": ("segmentation", "detection"),
    "box": ("detection",),
}
MIN_PER_CLASS = 10  # fewer reviewed labels than this for a class: the model will not learn it
CLIPS_PER_VIDEO = 4
EVAL_FACTOR = 1.1  # training: data loading and the per-epoch checkpoint beyond the measured step


@dataclass(frozen=True)
class VideoChoice:
    video_id: int
    name: str
    reviewed: bool
    labels: int  # reviewed labels (accepted, edited or drawn)


@dataclass(frozen=True)
class FinetunePlan:
    video_ids: tuple[int, ...]
    tasks: tuple[str, ...]
    parent_version: int | None
    parent_name: str
    budget_min: float
    device: str  # "cuda" | "cpu"
    gpu_name: str
    label_counts: dict[str, int]
    per_video: dict[int, dict[str, int]]
    split: dict[int, str]
    epochs: int
    estimated_s: float
    warnings: tuple[str, ...]
    overrides: tuple[str, ...] = ()  # extra ``--set KEY=JSON`` for the engine (tests: tiny shapes)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.video_ids) and bool(self.tasks) and self.parent_version is not None

    def summary_lines(self) -> list[str]:
        n_train = sum(1 for s in self.split.values() if s == "train")
        n_val = sum(1 for s in self.split.values() if s == "val")
        lines = [
            f"{len(self.video_ids)} video(s): {n_train} for training, {n_val} held out for validation",
            f"Tasks: {', '.join(self.tasks) or 'none'}",
            f"Starting model: {self.parent_name or 'none'}",
            f"Device: {'GPU (' + self.gpu_name + ')' if self.device == 'cuda' else 'CPU'}",
            f"{self.epochs} epoch(s), estimated {format_duration(self.estimated_s)}"
            + (
                f" (range {format_duration(self.extra['estimate_range_s'][0])}–"
                f"{format_duration(self.extra['estimate_range_s'][1])}, from measured {self.extra.get('arch', '')} "
                "speed)"
                if self.extra.get("estimate_range_s")
                else ""
            ),
        ]
        if self.extra.get("data_text"):
            lines.append(self.extra["data_text"])
        return lines


KIND_WORDS = {"video_class": "video class", "mask": "masks", "box": "boxes"}


def label_name(key: str) -> str:
    """``mask/polyp`` -> ``polyp (masks)``: how a count key reads for a user."""
    kind, _, cls = key.partition("/")
    return f"{cls} ({KIND_WORDS.get(kind, kind)})"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def candidate_videos(store: Store, project_id: int | None = None) -> list[VideoChoice]:
    """Videos one could train on, with their count of reviewed labels; reviewed ones are the default choice."""
    out = []
    for v in store.list_videos(project_id) if project_id is not None else store.list_videos():
        n = sum(1 for lab in store.labels_for_video(v.id, suggestions=False) if lab.state in POSITIVE)
        name = str(v.meta.get("name") or Path(v.path).name)
        out.append(VideoChoice(v.id, name, v.review_status == ReviewStatus.REVIEWED, n))
    return out


def count_labels(store: Store, video_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Reviewed labels per video as ``{"<kind>/<class>": n}`` (segments count with their video)."""
    out: dict[int, dict[str, int]] = {}
    for vid in video_ids:
        c: Counter[str] = Counter()
        for lab in store.labels_for_video(vid, suggestions=False):
            if lab.state in POSITIVE and str(lab.kind) in KIND_TASKS:
                c[f"{lab.kind}/{lab.class_name}"] += 1
        out[int(vid)] = dict(c)
    return out


def split_videos(video_ids: Sequence[int], val_fraction: float = 0.2) -> dict[int, str]:
    """Deterministic split by video (a hash of the id orders them): at least one validation video from two on."""
    ids = sorted(int(v) for v in video_ids)
    order = sorted(ids, key=lambda i: hashlib.sha1(str(i).encode()).hexdigest())
    n_val = 0 if len(ids) < 2 else max(1, round(len(ids) * val_fraction))
    held = set(order[:n_val])
    return {i: ("val" if i in held else "train") for i in ids}


_DEVICE_CACHE: dict[str, tuple[str, str]] = {}


def detect_device() -> tuple[str, str]:
    """("cuda", name) or ("cpu", "") — probed in a child process so the app never imports torch."""
    if "probe" in _DEVICE_CACHE:
        return _DEVICE_CACHE["probe"]
    code = (
        "import json, torch; ok = torch.cuda.is_available(); "
        "print(json.dumps([ok, torch.cuda.get_device_name(0) if ok else '']))"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        ok, name = json.loads(proc.stdout.strip().splitlines()[-1])
        result = ("cuda", str(name)) if ok else ("cpu", "")
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        log.warning("could not probe the GPU; assuming CPU", exc_info=True)
        result = ("cpu", "")
    _DEVICE_CACHE["probe"] = result
    return result


def tasks_supported(counts: dict[str, int]) -> list[str]:
    tasks: list[str] = []
    for key, n in counts.items():
        if n:
            for t in KIND_TASKS.get(key.split("/")[0], ()):
                if t not in tasks:
                    tasks.append(t)
    return [t for t in ("classification", "segmentation", "detection") if t in tasks]


def plan_finetune(
    store: Store,
    video_ids: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    budget_min: float = 30.0,
    device: str = "auto",
    parent_version: int | None = None,
    overrides: Sequence[str] = (),
    clips_per_video: int = CLIPS_PER_VIDEO,
) -> FinetunePlan:
    """What a fine-tune of ``video_ids`` would do, with the warnings a user needs before starting it."""
    ids = tuple(sorted(int(v) for v in video_ids))
    per_video = count_labels(store, ids)
    totals: Counter[str] = Counter()
    for c in per_video.values():
        totals.update(c)
    chosen = tuple(tasks) if tasks is not None else tuple(tasks_supported(dict(totals)))
    if parent_version is None:
        active = store.active_model_version()
        parent_version = active.id if active is not None else None
    parent_name = store.get_model_version(parent_version).name if parent_version is not None else ""
    if device == "auto":
        dev, gpu = detect_device()
    else:
        dev, gpu = ("cuda", device) if device.startswith("cuda") else ("cpu", "")
    split = split_videos(ids)
    warnings: list[str] = []
    if not ids:
        warnings.append("No videos selected.")
    if parent_version is None:
        warnings.append("No starting model: register or import a model first (Models…).")
    relevant = {"classification": "video_class", "segmentation": "mask", "detection": ("mask", "box")}
    for key, n in sorted(totals.items()):
        kind = key.split("/")[0]
        if any(kind in (relevant[t] if isinstance(relevant[t], tuple) else (relevant[t],)) for t in chosen):
            if n < MIN_PER_CLASS:
                warnings.append(
                    f"Only {n} reviewed label{'s' if n != 1 else ''} for {label_name(key)} (fewer than {MIN_PER_CLASS}): "
                    "the model is unlikely to learn it."
                )
    for t in chosen:
        kinds = relevant[t] if isinstance(relevant[t], tuple) else (relevant[t],)
        if not any(n for k, n in totals.items() if k.split("/")[0] in kinds):
            warnings.append(f"No reviewed labels for {t}: review some first or untick it.")
    if chosen == ("classification",) or "classification" in chosen:
        classes = {k for k, n in totals.items() if k.startswith("video_class/") and n}
        if len(classes) == 1:
            warnings.append(
                f"Every video is labelled {next(iter(classes)).split('/')[1]}: nothing to tell apart."
            )
    with_labels = [v for v, c in per_video.items() if sum(c.values())]
    if len(with_labels) == 1:
        warnings.append("All labels come from one video: the model will learn that video, not the task.")
    if len(ids) == 1:
        warnings.append("With a single video nothing is held out: the new version gets no held-out metrics.")
    if dev == "cpu":
        warnings.append(
            "No GPU: training runs on the CPU and is slow; keep the budget small or use a GPU machine."
        )
    n_train = sum(1 for s in split.values() if s == "train")
    extra: dict[str, Any] = {}
    parent_meta = _parent_meta(store, parent_version)
    arch = parent_meta.arch if parent_meta is not None else {"name": "endofm_tiny", "config": {}}
    frames = parent_meta.data.num_frames if parent_meta is not None else 8
    size = parent_meta.data.img_size[0] if parent_meta is not None else 112
    lo, per_clip, hi = train_seconds_per_clip(arch, frames, size, dev)
    # the held-out videos cost time too: a validation pass over every frame of them each epoch and, at the end, the
    # operating point's calibration through the serving path (forward only: a third of a training clip each)
    val_lengths = [_frame_count(store, v) for v, s in split.items() if s == "val"]
    stride = parent_meta.data.frame_stride if parent_meta is not None else 4
    span = parent_meta is not None and parent_meta.data.sampling == "span"
    per_frame = any(t in chosen for t in ("segmentation", "detection"))
    n_val_clips = validation_clips(val_lengths, frames, stride, per_frame, span)
    n_cal_clips = (
        calibration_clips(val_lengths[:16], frames, stride)
        if "classification" in chosen and val_lengths
        else 0
    )
    per_epoch = (n_train * clips_per_video * EVAL_FACTOR + n_val_clips / 3.0) * per_clip + 5.0
    overhead = run_overhead_s(arch, dev) + n_cal_clips / 3.0 * per_clip  # start-up, export, calibration
    epochs = max(1, min(50, int((budget_min * 60.0 - overhead) // max(per_epoch, 1e-6))))
    estimated = epochs * per_epoch + overhead
    extra.update(validation_clips=n_val_clips, calibration_clips=n_cal_clips)
    rng_s = [overhead + (estimated - overhead) * f / per_clip for f in (lo, hi)]
    extra.update(arch=str(arch.get("name", "")), estimate_range_s=rng_s, seconds_per_clip=per_clip)
    if parent_meta is not None:
        extra["data_text"] = data_summary(parent_meta)
    if budget_min * 60.0 < per_epoch:
        warnings.append(
            f"The budget is shorter than one epoch (about {format_duration(per_epoch)}): one epoch will run."
        )
    if estimated > 2.0 * budget_min * 60.0:
        warnings.append(
            f"This job is estimated at {format_duration(estimated)} (range {format_duration(rng_s[0])}–"
            f"{format_duration(rng_s[1])}), more than twice the {budget_min:g} min budget, "
            f"from the measured speed of {arch.get('name', 'this model')} on this {'GPU' if dev == 'cuda' else 'CPU'}."
        )
    return FinetunePlan(
        video_ids=ids,
        tasks=chosen,
        parent_version=parent_version,
        parent_name=parent_name,
        budget_min=float(budget_min),
        device=dev,
        gpu_name=gpu,
        label_counts=dict(sorted(totals.items())),
        per_video=per_video,
        split=split,
        epochs=epochs,
        estimated_s=estimated,
        warnings=tuple(warnings),
        overrides=tuple(overrides),
        extra=extra,
    )


def _frame_count(store: Store, video_id: int) -> int:
    try:
        return int(store.get_video(video_id).frame_count or 0)
    except NotFoundError:
        return 0


def _parent_meta(store: Store, parent_version: int | None):
    if parent_version is None:
        return None
    try:
        return read_model_json(store.get_model_version(parent_version).files_dir)
    except (CheckpointError, OSError, AttributeError):
        log.warning("cannot read the parent model's model.json", exc_info=True)
        return None


def data_summary(meta) -> str:
    """How the new version will be fed: the parent's data config, which fine-tuning inherits (model.json)."""
    d = meta.data
    sampling = (
        f"{d.num_frames} frames over {d.span_s:.1f} s"
        if d.sampling == "span"
        else f"{d.num_frames} frames {d.frame_stride} apart"
    )
    norm = "/".join(f"{m:g}" for m in d.mean) + " ± " + "/".join(f"{s:g}" for s in d.std)
    crop = "short side + left/top crop" if d.resize == "short_side_corner" else "whole frame"
    return (
        f"Input (inherited from {meta.arch_name} parent): {sampling}, {d.img_size[0]} px ({crop}), "
        f"normalised {norm}, protocol {d.protocol}"
    )


def create_finetune_job(
    store: Store, plan: FinetunePlan, name: str | None = None, activate: bool = False
) -> Job:
    """A queued ``finetune`` job row for ``plan`` (started with ``JobService.command``)."""
    from endoreview.services.jobs import JobService

    if not plan.ok:
        raise ValueError("cannot start: " + ("; ".join(plan.warnings) or "nothing selected"))
    params: dict[str, Any] = {
        "video_ids": list(plan.video_ids),
        "tasks": ",".join(plan.tasks),
        "parent_version": plan.parent_version,
        "epochs": plan.epochs,
        "device": plan.device,
        "split": json.dumps({str(k): v for k, v in plan.split.items()}),
        "overrides": list(plan.overrides),
        "budget_min": plan.budget_min,
        "estimated_s": round(plan.estimated_s, 1),
    }
    if name:
        params["name"] = name
    if activate:
        params["activate"] = True
    return JobService(store).create("finetune", **params)


def run_dir_of(job: Job) -> Path:
    from endoreview.paths import data_dir

    return data_dir() / "runs" / f"job-{job.id}"


def resumable_jobs(store: Store) -> list[Job]:
    """Fine-tune jobs that stopped before registering a model (failed, cancelled, or killed) with their snapshot
    still on disk, and not already resumed by a later job; newest first."""
    from endoreview.services.jobs import JobService

    JobService(store).reap()  # a killed job's row still says running: it ended unexpectedly
    jobs = store.list_jobs()
    resumed = {int(j.params["resume_of"]) for j in jobs if j.params.get("resume_of") is not None}
    out = []
    for j in jobs:
        if j.kind != "finetune" or j.state not in (JobState.FAILED, JobState.CANCELLED) or j.id in resumed:
            continue
        if (run_dir_of(j) / "manifest.json").is_file():
            out.append(j)
    return sorted(out, key=lambda j: j.id, reverse=True)


def create_resume_job(store: Store, job_id: int) -> Job:
    """A queued fine-tune job that continues ``job_id``'s run (``resume_of``; see :mod:`endoreview.jobs.finetune`)."""
    from endoreview.services.jobs import JobService

    old = store.get_job(job_id)
    if old.kind != "finetune":
        raise ValueError(f"job {job_id} is a {old.kind} job, not a fine-tune")
    if old.state not in (JobState.FAILED, JobState.CANCELLED):
        raise ValueError(f"job {job_id} is {old.state}; only a failed or cancelled fine-tune can be resumed")
    if not (run_dir_of(old) / "manifest.json").is_file():
        raise ValueError(
            f"job {job_id}: its data snapshot is gone ({run_dir_of(old)}); start a new fine-tune"
        )
    params = {k: v for k, v in old.params.items() if k not in ("host", "resume_of")}
    return JobService(store).create("finetune", **params, resume_of=old.id)
