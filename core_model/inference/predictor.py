"""``Predictor``: a task model (backbone + heads) over a whole video, streaming per-frame results.

```python
from core_model.inference import Predictor
pred = Predictor("path/to/model_dir")                 # or Predictor(task_model, preprocess=Preprocess(...))
for event in pred.predict_video("video.mp4", frames=None, on_progress=None, should_cancel=None):
    ...                                                # JSON-ready dicts, in this order:
```

Events (``"video"`` is the path as given):

- ``{"event": "video_start", "video", "num_frames", "fps", "width", "height", "clips", "frames", "tasks", "classes",
  "sampling"}`` (``frames``: how many frame events will follow; ``classes``: per task, the label names;
  ``sampling``: ``clip_len``, ``frame_stride``, ``clip_stride``, ``img_size`` [h, w]: what this run used).
- ``{"event": "frame", "video", "frame": i, "probs": {class: p}, "masks": [{"label", "score", "rle"}],
  "boxes": [{"label", "score", "bbox": [x0, y0, x1, y1]}]}``, in increasing frame order, as soon as frame i is final.
  Masks are COCO RLE at the original frame size; boxes are in original frame pixels (docs/interfaces.md). A task the
  model has no head for gives an empty ``probs`` / ``masks`` / ``boxes``.
- ``{"event": "progress", "video", "done", "total", "fraction"}``: frames finalised so far (at most ~4 per second,
  plus one at the end); ``on_progress(done, total)`` is called after every batch.
- ``{"event": "video_done", "video", "frames", "clips", "seconds", "clips_per_s", "probs"}``: ``probs`` is the
  video-level mean of all clip probabilities.
- ``{"event": "cancelled", "video", "done", "total"}`` when ``should_cancel()`` returned True (checked before each
  batch); nothing follows it.
- ``{"event": "error", "video", "message"}`` when the video cannot be read (missing, corrupt, truncated mid-way);
  frame events already sent stay valid; nothing follows it.

Sampling: see ``core_model.inference.planning`` for what ``frame_stride`` / ``clip_stride`` mean, which clips run and
how overlapping clips are merged (class probabilities: mean over every clip whose span contains the frame; masks: mean
per-pixel probabilities over every clip that samples the frame; boxes: from the clip that samples the frame closest
to its centre). Preprocessing: each frame is resized (whole frame, aspect ratio not kept, nothing cropped) to the
model's ``img_size``, scaled to [0, 1] and normalised with the model's mean/std; masks are resized back bilinearly
(on the class probabilities, then argmax) and boxes scaled back per axis. Device: CUDA if present with bf16 autocast
(``core_model.runtime``), else CPU in fp32. Decoding and resizing run in a background thread, one batch ahead, one
frame at a time (``core_model.inference.stream``): memory is bounded by the batch, not the video. On the CPU, up to
``workers`` batches run through the model at once in worker threads (one intra-op thread each by default) and are
folded into the per-frame results in plan order, so the events are exactly those of one batch at a time. Masks stay at model
resolution until they are encoded (``core_model.inference.masks``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core_model import runtime
from core_model.contract import (
    DataConfig,
    ModelMeta,
    OperatingPoint,
    data_from_legacy_preprocess,
    video_decision,
)
from core_model.heads.task_model import EndoFMTaskModel
from core_model.inference.merge import FrameMerger
from core_model.inference.planning import Clip, plan_clip_starts, plan_clips
from core_model.inference.stream import ClipBatch, ClipStream

log = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "Predictor", "Preprocess", "preprocess_frames"]

PROGRESS_EVERY_S = 0.25


class ModelLoadError(RuntimeError):
    """The model of a ``Predictor(..., load_in_background=True)`` could not be loaded (the message says why)."""


# What the model expects: the contract's typed data config (model.json "data"); a format-1 ``preprocess`` dict is
# read with ``Preprocess.from_dict`` too.
Preprocess = DataConfig


def _as_data_config(pre: DataConfig | Mapping[str, Any]) -> DataConfig:
    if isinstance(pre, DataConfig):
        return pre
    known = {"sampling", "clips", "resize", "antialias", "protocol", "span_s"}
    return DataConfig.from_dict(pre) if known & set(pre) else data_from_legacy_preprocess(pre)


def _short_side_corner(h: int, w: int, size: tuple[int, int]) -> tuple[int, int]:
    """Frame size after the official ``scale``: short side -> size, the long side floor(long / short * size)."""
    s = size[0]
    if w <= h:
        return int(np.floor(h / w * s)), s
    return s, int(np.floor(w / h * s))


def preprocess_frames(frames: np.ndarray, pre: Preprocess) -> np.ndarray:
    """RGB uint8 ``[K, H, W, 3]`` -> normalised float32 ``[K, 3, S_h, S_w]``: /255, resized by ``pre.resize``
    (``squash``: the whole frame, aspect not kept, the fine-tuning evaluation transform; ``short_side_corner``: the
    short side to the size, then the left/top square, the official PolypDiag evaluation), bilinear
    (antialiased if ``pre.antialias``), then mean/std."""
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    out = np.empty((len(frames), 3, *pre.img_size), dtype=np.float32)
    for k in range(0, len(frames), 4):  # a few frames at a time: a float 1080p frame is 25 MB
        x = torch.from_numpy(np.ascontiguousarray(frames[k : k + 4])).permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        size = _short_side_corner(h, w, pre.img_size) if pre.resize == "short_side_corner" else pre.img_size
        if (h, w) != tuple(size):  # x: [k, 3, H, W] -> [k, 3, S_h, S_w]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=pre.antialias)
        x = x[:, :, : pre.img_size[0], : pre.img_size[1]]  # the left / top crop (a no-op for squash)
        out[k : k + len(x)] = ((x - mean) / std).numpy()
    return out


class _ExactStream:
    """Clip batches for data configs the streaming path does not cover (the official span rule, one clip from frame
    0, a short-side crop, no antialiasing): each batch's frames read with ``get_batch`` and transformed by the
    float reference ``preprocess_frames``, so the pixels are exactly the recorded protocol's."""

    def __init__(self, reader, clips: list[Clip], batch_size: int, pre: DataConfig):
        self._reader, self._clips, self._bs, self._pre = reader, clips, max(1, batch_size), pre

    def __iter__(self) -> Iterator[ClipBatch]:
        for i in range(0, len(self._clips), self._bs):
            clips = self._clips[i : i + self._bs]
            need = sorted({j for c in clips for j in c.indices})
            raw = self._reader.get_batch(need)  # [K, H, W, 3]
            pix = dict(zip(need, preprocess_frames(raw, self._pre)))
            x = np.stack([np.stack([pix[j] for j in c.indices], axis=1) for c in clips])  # [B, 3, T, S, S]
            nxt = self._clips[i + self._bs].start if i + self._bs < len(self._clips) else None
            yield ClipBatch(clips, torch.from_numpy(x), (int(raw.shape[1]), int(raw.shape[2])), nxt)

    def close(self) -> None:
        pass


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """glibc only: serve allocations up to 32 MB from the heap and keep up to 32 MB of freed memory (plus 16 MB of
    padding) instead of returning it to the kernel at once. A CPU forward pass of the demo model allocates and frees ~36 MB of
    activations (each a few MB, the size glibc hands to ``mmap`` and unmaps on free), so by default every batch
    page-faults them in again: ~9,200 page faults and 27 ms of system time a batch of 4 clips (~15 % of the
    model's CPU time), ~1 ms after this (measured on the 2-core development machine). Process-wide and harmless
    elsewhere; a no-op where ``mallopt`` does not exist (musl, macOS, Windows)."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 32 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 16 * 1024 * 1024)  # M_TOP_PAD: grow and trim the heap 16 MB at a time
    except (OSError, AttributeError):
        pass


class FrameEvidence:
    """Per frame, the highest score of a ``finding`` mask and box in the frame events (what an operating point
    with ``evidence="segmentation"`` / ``"detection"`` aggregates)."""

    def __init__(self, n: int, finding: str):
        self.finding = finding
        self.seg = np.zeros(n)
        self.det = np.zeros(n)

    def add(self, f: int, ev: Mapping[str, Any]) -> None:
        for key, arr in (("masks", self.seg), ("boxes", self.det)):
            s = [float(x["score"]) for x in ev.get(key) or () if x.get("label") == self.finding]
            if s:
                arr[f] = max(s)

    def scores(self, evidence: str) -> np.ndarray:
        return self.seg if evidence == "segmentation" else self.det


class Predictor:
    """Runs an ``EndoFMTaskModel`` over videos. ``model``: a model directory (loaded with its metadata) or a model
    object plus its ``preprocess`` (a ``Preprocess`` or a ``ModelMeta.preprocess``-style dict).

    ``frame_stride`` / ``clip_stride`` override the model's sampling; ``batch_size`` is clips per forward pass (default 16 on CUDA, 4 on CPU);
    ``box_threshold`` / ``max_boxes`` filter what a frame event lists; ``device`` is passed to
    ``runtime.pick_device`` (``None``: CUDA if present, else CPU); ``amp=False`` forces fp32 on a GPU.
    ``workers``: on the CPU, how many batches run through the model at once, each in its own thread with
    ``torch.get_num_threads() // workers`` intra-op threads (default: ``min(torch.get_num_threads(), 4)``; see
    ``_cpu_workers``); on a GPU always 1.
    """

    def __init__(
        self,
        model: str | os.PathLike | EndoFMTaskModel,
        preprocess: Preprocess | Mapping[str, Any] | None = None,
        *,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        amp: bool = True,
        frame_stride: int | None = None,
        clip_stride: int | None = None,
        box_threshold: float = 0.1,
        max_boxes: int = 20,
        workers: int | None = None,
        load_in_background: bool = False,
    ):
        self.device = runtime.pick_device(device)
        self.meta: ModelMeta | None = None
        self._model: EndoFMTaskModel | None = None
        self._loading: Future | None = None
        if isinstance(model, EndoFMTaskModel):
            if preprocess is None:
                raise ValueError(
                    "Predictor(model object) needs its preprocess settings (mean/std/frames/size)"
                )
            self._model = model
        else:
            from core_model.contract import read_model_json
            from core_model.heads.io import load_task_model

            if load_in_background:  # model.json now; the weights while the first video starts decoding
                meta = read_model_json(model)
                pool = ThreadPoolExecutor(1, thread_name_prefix="endofm-load")
                self._loading = pool.submit(load_task_model, model, device="cpu")
                pool.shutdown(wait=False)
            else:
                self._model, meta = load_task_model(model, device="cpu")
            preprocess = preprocess if preprocess is not None else meta.data
            self.meta = meta
        pre = _as_data_config(preprocess)
        if frame_stride is not None:
            pre = pre.replace(frame_stride=int(frame_stride), sampling="stride")
        if clip_stride is not None:
            pre = pre.replace(clip_stride=int(clip_stride), clips="sliding")
        self.preprocess = pre
        if batch_size is None:
            batch_size = 16 if self.device.type == "cuda" else 4
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = None if workers is None else int(workers)
        self.amp = bool(amp)
        self.box_threshold = float(box_threshold)
        self.max_boxes = int(max_boxes)
        if self.device.type == "cpu":
            _keep_freed_memory()
        if self._model is not None:
            self._place(self._model)

    def _place(self, model: EndoFMTaskModel) -> None:
        model.eval().to(self.device)
        if self.device.type == "cpu":
            # oneDNN runs the heads' small convolutions ~4x faster on channels-last weights (the demo model's clip:
            # 42.6 -> 35.6 ms of CPU); outputs move by ~2e-5
            model.to(memory_format=torch.channels_last)

    @property
    def model(self) -> EndoFMTaskModel:
        """The task model; with ``load_in_background``, waits for it (a failed load raises ``ModelLoadError``)."""
        if self._model is None:
            assert self._loading is not None
            try:
                model, _ = self._loading.result()
            except Exception as exc:  # CheckpointError, shape mismatch, no heads ...
                raise ModelLoadError(str(exc)) from exc
            self._place(model)
            self._model, self._loading = model, None
        return self._model

    PREFETCH_BYTES = 8 * 1024 * 1024

    def _prefetch_depth(self) -> int:
        """Batches decoded ahead of the model: ~8 MB of them (the demo model's batch is 0.6 MB, so 13 batches, ~70
        frames, ~0.7 s of decoding on the 2-core machine: what loading the model takes; a ViT-B batch of 16 clips,
        77 MB, gets the minimum of 2). Bounded whatever the video's length."""
        pre = self.preprocess
        batch = self.batch_size * 3 * pre.num_frames * pre.img_size[0] * pre.img_size[1] * 4
        return int(min(64, max(2, self.PREFETCH_BYTES // max(batch, 1))))

    def _head_names(self) -> list[str]:
        return list(self.meta.heads) if self.meta is not None else list(self.model.heads)

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    def _classes(self) -> dict[str, list[str]]:
        return {task: list(head.classes) for task, head in self.model.heads.items()}

    # ------------------------------------------------------------------------------------------------ main loop
    def predict_video(
        self,
        path: str | os.PathLike,
        *,
        frames: Iterable[int] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream events for one video (see the module docstring). ``frames``: only these frame indices."""
        from core_model.video import VideoError, VideoReader

        video = os.fspath(path)
        frames = None if frames is None else [int(f) for f in frames]
        try:
            reader = VideoReader(path, backend="pyav")  # frame-threaded, and a third of decord's memory
        except VideoError as exc:
            yield {"event": "error", "video": video, "message": str(exc)}
            return
        try:
            yield from self._run(reader, video, frames, on_progress, should_cancel)
        except VideoError as exc:
            yield {"event": "error", "video": video, "message": str(exc)}
        finally:
            reader.close()

    def _run(self, reader, video, frames, on_progress, should_cancel) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        pre = self.preprocess
        n = len(reader)
        dense = bool({"segmentation", "detection"} & set(self._head_names()))
        meta = reader.meta
        try:
            exact = None
            if pre.clips == "first":  # one clip from frame 0 (official PolypDiag): only the frames it spans
                if n < 1:
                    raise ValueError("the video has no frames")
                idx = tuple(int(i) for i in np.minimum(pre.clip_offsets(meta.fps), n - 1))
                exact = [Clip(start=0, indices=idx, span_end=min(pre.span_frames(meta.fps), n))]
                span = exact[0].span_end
                frames = [f for f in (frames if frames is not None else range(span)) if 0 <= f < span]
            elif pre.sampling == "span":  # sliding clips of the span rule: its stride at this frame rate
                stride = max(1, int(pre.clip_offsets(meta.fps)[1])) if pre.num_frames > 1 else 1
                exact = plan_clips(n, pre.num_frames, stride, pre.clip_stride, frames=frames, dense=dense)
            elif pre.resize != "squash" or not pre.antialias:  # another resize rule: the float reference path
                exact = plan_clips(
                    n, pre.num_frames, pre.frame_stride, pre.clip_stride, frames=frames, dense=dense
                )
            starts = (
                [c.start for c in exact]
                if exact is not None
                else plan_clip_starts(
                    n, pre.num_frames, pre.frame_stride, pre.clip_stride, frames=frames, dense=dense
                )
            )
        except ValueError as exc:
            yield {"event": "error", "video": video, "message": f"{video}: {exc}"}
            return
        targets: Sequence[int] = range(n) if frames is None else sorted(set(int(f) for f in frames))
        stream = (
            ClipStream(
                reader,
                starts,
                num_frames=n,
                clip_len=pre.num_frames,
                frame_stride=pre.frame_stride,
                batch_size=self.batch_size,
                img_size=pre.img_size,
                mean=pre.mean,
                std=pre.std,
                pin=self.device.type == "cuda",
                depth=self._prefetch_depth(),
            )
            if exact is None
            else _ExactStream(reader, exact, self.batch_size, pre)
        )
        try:  # until the loop below takes over: a model that fails to load or a consumer that stops early ends
            # the decoding thread too
            heads = self.model.heads  # decoding has started: a model still loading finishes meanwhile
            yield {
                "event": "video_start",
                "video": video,
                "num_frames": n,
                "fps": float(meta.fps),
                "width": int(meta.width),
                "height": int(meta.height),
                "clips": len(starts),
                "frames": len(targets),
                "tasks": self.tasks,
                "classes": self._classes(),
                "sampling": {
                    "clip_len": pre.num_frames,
                    "frame_stride": pre.frame_stride,
                    "clip_stride": pre.effective_clip_stride(),
                    "img_size": list(pre.img_size),
                    "protocol": pre.protocol,
                    "sampling": pre.sampling,
                    "clips": pre.clips,
                    "resize": pre.resize,
                },
            }
            merger = FrameMerger(dict(heads.items()), n, pre.img_size, self.box_threshold, self.max_boxes)
            evidence = FrameEvidence(n, self._operating_point().finding)
            ood_ref = self.meta.ood if self.meta is not None else {}
            cls_rec = None
            if (
                ood_ref
            ):  # out-of-domain check: the clips' CLS features, by a hook (core_model.inference.calibrate)
                from core_model.inference.calibrate import CLSRecorder

                cls_rec = CLSRecorder(self.model, ood_ref)
            next_target = 0  # index into targets of the next frame to emit
            last_progress = 0.0
            workers, intra = self._cpu_workers() if self.device.type == "cpu" else (1, None)
            pool = ThreadPoolExecutor(workers, thread_name_prefix="endofm-model") if workers > 1 else None
            pending: deque = deque()  # (batch, future of merger.predict(outputs)), in plan order
            threads_before = torch.get_num_threads()
        except BaseException:
            stream.close()
            raise

        def forward(x: torch.Tensor) -> dict[str, Any]:
            x = x.to(self.device, non_blocking=True)
            with torch.inference_mode(), runtime.autocast(self.device, enabled=self.amp):
                outputs = self.model(x)
                return merger.predict(outputs)

        def fold(batch: ClipBatch, preds: dict[str, Any]) -> Iterator[dict[str, Any]]:
            nonlocal next_target, last_progress
            merger.add_predicted(batch.clips, preds)
            # every clip still to run starts at or after `limit`: frames before it are final
            limit = batch.next_start if batch.next_start is not None else n
            while next_target < len(targets) and targets[next_target] < limit:
                f = targets[next_target]
                ev = merger.frame_event(video, f, batch.frame_hw)
                evidence.add(f, ev)
                yield ev
                next_target += 1
            merger.release_before(limit)
            if on_progress is not None:
                on_progress(next_target, len(targets))
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_EVERY_S or batch.next_start is None:
                last_progress = now
                yield {
                    "event": "progress",
                    "video": video,
                    "done": next_target,
                    "total": len(targets),
                    "fraction": round(next_target / max(len(targets), 1), 4),
                }

        try:
            if intra is not None:
                torch.set_num_threads(intra)
            for batch in stream:
                if should_cancel is not None and should_cancel():
                    yield {"event": "cancelled", "video": video, "done": next_target, "total": len(targets)}
                    return
                if pool is None:
                    yield from fold(batch, forward(batch.x))
                    continue
                # `workers` batches in the model at once and one more queued, so a worker that finishes starts the
                # next batch while this thread folds the finished one; results folded in plan order
                pending.append((batch, pool.submit(forward, batch.x)))
                if len(pending) > workers:
                    done_batch, fut = pending.popleft()
                    yield from fold(done_batch, fut.result())
            while pending:
                done_batch, fut = pending.popleft()
                yield from fold(done_batch, fut.result())
        finally:
            stream.close()
            if pool is not None:
                for _, fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True)
            if intra is not None:
                torch.set_num_threads(threads_before)
            if cls_rec is not None:
                cls_rec.close()
        seconds = time.perf_counter() - t0
        done = {
            "event": "video_done",
            "video": video,
            "frames": next_target,
            "clips": len(starts),
            "seconds": round(seconds, 3),
            "clips_per_s": round(len(starts) / seconds, 3) if seconds > 0 else None,
            "probs": merger.video_probs(),
        }
        decision = self._decision(merger, evidence, float(meta.fps))
        if decision is not None:
            done["decision"], done["operating_point"] = decision
        if cls_rec is not None:
            from core_model.inference.calibrate import ood_verdict

            verdict = ood_verdict(None, ood_ref, distances=cls_rec.distances)
            if verdict is not None:
                done["ood"] = verdict
        yield done

    def _cpu_workers(self) -> tuple[int, int]:
        """(batches in the model at once, intra-op threads each) on the CPU. The model's small kernels (the heads'
        convolutions and GroupNorms on 7-112 px maps, a few hundred per batch) scale badly over intra-op threads,
        and more so with ``OMP_WAIT_POLICY=PASSIVE`` (every kernel wakes sleeping threads); independent batches in
        separate threads, one intra-op thread each, keep every core busy instead
        (docs/experiments/procedure_scale.md)."""
        threads = max(1, torch.get_num_threads())
        workers = self.workers if self.workers is not None else min(threads, 4)
        return workers, max(1, threads // workers)

    def _operating_point(self) -> OperatingPoint:
        if self.meta is not None:
            return self.meta.operating_point("classification")
        head = self.model.heads["classification"] if "classification" in self.model.heads else None
        classes = list(head.classes) if head is not None else ["normal", "abnormal"]
        return OperatingPoint(
            positive=next((c for c in classes if c not in ("normal", "background")), classes[-1])
        )

    def _decision(
        self, merger: FrameMerger, evidence: FrameEvidence, fps: float
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The whole-video call by the model's classification operating point (``core_model.contract``)."""
        head = self.model.heads["classification"] if "classification" in self.model.heads else None
        if head is None or merger.clips_added == 0:
            return None
        classes = list(head.classes)
        op = self._operating_point()
        if op.positive not in classes:
            return None
        k = classes.index(op.positive)
        covered = merger.cls_cnt > 0
        if (
            op.evidence != "classification"
            and op.evidence in self.model.heads
            and self.preprocess.clips != "first"
        ):
            scores, op_used = evidence.scores(op.evidence), op
        elif self.preprocess.clips == "first" or not covered.any():
            scores = np.array([merger.clip_sum[k] / merger.clips_added])  # one clip: the per-video call
            op_used = op if op.rule == "mean" else OperatingPoint(**{**op.to_dict(), "rule": "mean"})
        else:
            scores = np.where(covered, merger.cls_sum[:, k] / np.maximum(merger.cls_cnt, 1), 0.0)
            op_used = op
        negative = next((c for c in classes if c != op.positive), "normal")
        d = video_decision(scores, fps, op_used, negative_label=negative, abnormal_label=op.positive)
        return d.to_dict(), op_used.to_dict()
