"""Datasets that read the training manifest (``core_model.data.manifest``).

Splits are by video (the manifest's ``split``), never by frame; a preset may instead cut one image-sequence video
into the paper's hard-coded sequences (CVC-12k), each sequence then belongs to exactly one split.

Labels per task:

* classification: the video's ``video_label`` (index into ``classes.video``); videos without one are ignored by
  the loss. Every clip of a video carries its video's label (PolypDiag labels whole videos the same way).
* segmentation: per frame, 0 = background, k + 1 = ``classes.mask[k]``; frames that are not labelled are ignored
  (-100) unless the video is ``dense``. A ``negative`` frame (for example a rejected prediction) is all background.
* detection: per frame boxes (``classes.box``); frames with masks but no boxes get their boxes from the masks
  (one per connected track id); unlabelled frames are ignored, negative frames train "no object".

Frames are decoded through ``core_model.video.VideoReader`` and kept in a small LRU cache (by bytes), so an epoch
over a few dozen short videos decodes each frame once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core_model.contract import DataConfig, rle_decode
from core_model.data.manifest import ManifestVideo, TrainingManifest
from core_model.finetune.augment import IGNORE, AugmentConfig, ClipTargets, normalize, transform_clip
from core_model.finetune.config import FinetuneConfig
from core_model.finetune.presets import cvc_sequences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequenceRef:
    """Frames ``[start, end)`` of one manifest video, in one split."""

    video: ManifestVideo
    path: str
    start: int
    end: int
    split: str

    @property
    def name(self) -> str:
        whole = self.start == 0 and self.end == self.video.num_frames
        return self.video.id if whole else f"{self.video.id}[{self.start}:{self.end}]"

    @property
    def length(self) -> int:
        return self.end - self.start


def build_sequences(manifest: TrainingManifest, sequences: str = "") -> dict[str, list[SequenceRef]]:
    """Sequences per split. ``sequences=""``: whole videos in their manifest split; otherwise a preset's
    hard-coded frame ranges, applied to every video long enough to hold them."""
    out: dict[str, list[SequenceRef]] = {}
    for v in manifest.videos:
        path = str(manifest.resolve_path(v))
        if not sequences:
            out.setdefault(v.split, []).append(SequenceRef(v, path, 0, v.num_frames, v.split))
            continue
        ranges = cvc_sequences(sequences)
        if max(e for rs in ranges.values() for _, e in rs) > v.num_frames:
            log.warning(
                "video %s has %d frames, too few for the %s sequences; skipped", v.id, v.num_frames, sequences
            )
            continue
        for split, rs in ranges.items():
            out.setdefault(split, []).extend(SequenceRef(v, path, s, e, split) for s, e in rs)
    return out


class FrameCache:
    """LRU cache of decoded frames keyed by (path, index), bounded in bytes; one reader per path kept open."""

    def __init__(self, max_bytes: int = 1 << 30, max_readers: int = 8):
        self.max_bytes = int(max_bytes)
        self.max_readers = max_readers
        self._frames: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._readers: OrderedDict[str, object] = OrderedDict()
        self._bytes = 0

    def _reader(self, path: str):
        from core_model.video import VideoReader

        r = self._readers.get(path)
        if r is None:
            r = VideoReader(path)
            self._readers[path] = r
            while len(self._readers) > self.max_readers:
                _, old = self._readers.popitem(last=False)
                old.close()
        self._readers.move_to_end(path)
        return r

    def get(self, path: str, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``[K, H, W, 3]`` frames ``indices`` of ``path``."""
        missing = sorted({int(i) for i in indices if (path, int(i)) not in self._frames})
        if missing:
            batch = self._reader(path).get_batch(missing)
            for i, fr in zip(missing, batch):
                self._frames[(path, i)] = fr
                self._bytes += fr.nbytes
        out = []
        for i in indices:
            key = (path, int(i))
            self._frames.move_to_end(key)
            out.append(self._frames[key])
        while self._bytes > self.max_bytes and len(self._frames) > len(indices):
            _, fr = self._frames.popitem(last=False)
            self._bytes -= fr.nbytes
        return np.stack(out)

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()
        self._frames.clear()
        self._bytes = 0


class LabelIndex:
    """Targets for frames of one video, in original pixels, from the manifest's labels."""

    def __init__(self, video: ManifestVideo, classes: dict[str, tuple[str, ...]]):
        self.video = video
        self.frames = video.frame_map()
        self.mask_classes = list(classes.get("mask", ()))
        self.box_classes = list(classes.get("box", ())) or self.mask_classes
        video_classes = list(classes.get("video", ()))
        self.video_target = (
            video_classes.index(video.video_label)
            if video.video_label is not None and video.video_label in video_classes
            else IGNORE
        )
        self._mask_cache: dict[int, np.ndarray] = {}

    def labelled(self, frame: int) -> bool:
        return frame in self.frames or self.video.dense

    def has_object(self, frame: int) -> bool:
        fl = self.frames.get(frame)
        return bool(fl and (fl.masks or fl.boxes))

    def class_mask(self, frame: int) -> np.ndarray:
        """int64 ``[H, W]``: 0 background, k + 1 mask class k, ``IGNORE`` everywhere if the frame is unlabelled."""
        if frame in self._mask_cache:
            return self._mask_cache[frame]
        h, w = self.video.height, self.video.width
        fl = self.frames.get(frame)
        if fl is None:
            out = np.zeros((h, w), np.int64) if self.video.dense else np.full((h, w), IGNORE, np.int64)
        else:
            out = np.zeros((h, w), np.int64)
            if fl.boxes and not fl.masks and not fl.negative:
                out[:] = IGNORE  # boxes only: no pixel labels on this frame
            for m in fl.masks:
                if m.label in self.mask_classes:
                    out[rle_decode(m.rle).astype(bool)] = self.mask_classes.index(m.label) + 1
        if len(self._mask_cache) < 4096:
            self._mask_cache[frame] = out
        return out

    def boxes(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(boxes ``[n, 4]``, labels ``[n]``, track ids ``[n]``) or None when the frame is unlabelled."""
        fl = self.frames.get(frame)
        if fl is None:
            if self.video.dense:
                return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
            return None
        items = [(b.bbox, b.label, b.track_id) for b in fl.boxes if b.label in self.box_classes]
        if not fl.boxes and fl.masks:  # derive boxes from masks, one per mask instance
            for m in fl.masks:
                if m.label not in self.box_classes:
                    continue
                ys, xs = np.nonzero(rle_decode(m.rle))
                if xs.size:
                    items.append(((xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0), m.label, m.track_id))
        b = np.array([it[0] for it in items], np.float32).reshape(-1, 4)
        lab = np.array([self.box_classes.index(it[1]) for it in items], np.int64)
        tid = np.array([-1 if it[2] is None else it[2] for it in items], np.int64)
        return b, lab, tid


def clip_indices(
    seq: SequenceRef, cfg: FinetuneConfig, rng: np.random.Generator | None, start: int | None = None
):
    """Frame indices of one clip of ``seq`` (clamped to its last frame, so short sequences repeat it)."""
    t = cfg.num_frames
    if cfg.window == "linspace":  # the official rule, as served (core_model.contract.DataConfig.clip_offsets)
        offsets = DataConfig(num_frames=t, sampling="span", span_s=cfg.window_s).clip_offsets(seq.video.fps)
        span = int(offsets[-1]) + 1
        max_start = max(seq.length - span, 0)
        s0 = start if start is not None else (int(rng.integers(0, max_start + 1)) if rng is not None else 0)
        rel = offsets + s0
    else:
        span = cfg.frame_stride * (t - 1) + 1
        max_start = max(seq.length - span, 0)
        s0 = start if start is not None else (int(rng.integers(0, max_start + 1)) if rng is not None else 0)
        rel = s0 + cfg.frame_stride * np.arange(t)
    return np.minimum(rel, seq.length - 1) + seq.start


def eval_clips(seq: SequenceRef, cfg: FinetuneConfig, per_frame: bool) -> list[np.ndarray]:
    """Deterministic evaluation clips. Per-frame tasks: clips that together cover every frame exactly once
    (interleaved offsets of ``frame_stride``, the sampling the model was trained with); classification only: the
    first window (PolypDiag) in linspace mode, else non-overlapping clips over the sequence."""
    if not per_frame and cfg.window == "linspace":
        return [clip_indices(seq, cfg, None, start=0)]
    t, s = cfg.num_frames, max(1, cfg.frame_stride if cfg.window == "stride" else 1)
    block = s * t
    step = cfg.eval_clip_stride or block
    clips = []
    for b in range(0, seq.length, step if not per_frame else block):
        for o in range(s if per_frame else 1):
            rel = b + o + s * np.arange(t)
            if rel[0] >= seq.length:
                continue
            clips.append(np.minimum(rel, seq.length - 1) + seq.start)
    return clips


class ClipDataset(torch.utils.data.Dataset):
    """Clips of a list of sequences. Training (``train=True``): ``cfg.clips_per_video`` random clips per sequence
    per epoch, augmented; per-frame tasks pick, 1 time in 2, a window holding a frame with an object and 1 in 4
    one holding another labelled frame. Evaluation:
    the deterministic ``eval_clips``, resized only."""

    def __init__(
        self,
        seqs: Sequence[SequenceRef],
        cfg: FinetuneConfig,
        classes: dict[str, tuple[str, ...]],
        train: bool,
        cache: FrameCache | None = None,
    ):
        self.seqs = list(seqs)
        self.cfg = cfg
        self.train = train
        self.tasks = cfg.tasks
        self.classes = dict(classes)
        self.cache = cache or FrameCache()
        self.labels = [LabelIndex(s.video, classes) for s in self.seqs]
        self.epoch = 0
        per_frame = any(t in self.tasks for t in ("segmentation", "detection"))
        self.per_frame = per_frame
        if train:
            self.items = [(i, None) for i in range(len(self.seqs)) for _ in range(cfg.clips_per_video)]
            self._labelled = [
                np.array([f for f in range(s.start, s.end) if self.labels[i].labelled(f)], np.int64)
                for i, s in enumerate(self.seqs)
            ]
            self._positive = [
                np.array([f for f in range(s.start, s.end) if self.labels[i].has_object(f)], np.int64)
                for i, s in enumerate(self.seqs)
            ]
        else:
            self.items = [(i, c) for i, s in enumerate(self.seqs) for c in eval_clips(s, cfg, per_frame)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _train_indices(self, i: int, rng: np.random.Generator) -> np.ndarray:
        seq, cfg = self.seqs[i], self.cfg
        u = rng.uniform()
        # per-frame tasks: half the clips hold a frame with an object (polyps are rare and small), a quarter
        # some other labelled frame, a quarter anywhere
        lab = self._positive[i] if u < 0.5 and self._positive[i].size else self._labelled[i]
        if self.per_frame and lab.size and cfg.window == "stride" and u < 0.75:
            f = int(lab[rng.integers(0, lab.size)]) - seq.start  # a labelled frame, placed at a random slot
            span = cfg.frame_stride * (cfg.num_frames - 1) + 1
            max_start = max(seq.length - span, 0)
            slots = [p for p in range(cfg.num_frames) if 0 <= f - p * cfg.frame_stride <= max_start]
            start = f - slots[int(rng.integers(0, len(slots)))] * cfg.frame_stride if slots else 0
            return clip_indices(seq, cfg, None, start=start)
        return clip_indices(seq, cfg, rng)

    def __getitem__(self, k: int) -> dict:
        i, idx = self.items[k]
        seq = self.seqs[i]
        rng = np.random.default_rng((self.cfg.seed, self.epoch, k)) if self.train else None
        if idx is None:
            idx = self._train_indices(i, rng)
        frames = self.cache.get(seq.path, idx.tolist())
        li = self.labels[i]
        targets = ClipTargets()
        if "segmentation" in self.tasks:
            targets.masks = torch.from_numpy(np.stack([li.class_mask(int(f)) for f in idx]))
        box_valid = []
        if "detection" in self.tasks:
            for f in idx:
                b = li.boxes(int(f))
                box_valid.append(b is not None)
                b = b or (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
                targets.boxes.append(torch.from_numpy(b[0]))
                targets.box_labels.append(torch.from_numpy(b[1]))
                targets.track_ids.append(torch.from_numpy(b[2]))
        aug: AugmentConfig = self.cfg.augment
        aug = AugmentConfig(**{**aug.__dict__, "size": self.cfg.img_size})
        x, out = transform_clip(frames, targets, aug, rng)
        x = normalize(x, self.cfg.mean, self.cfg.std)
        sample = {"clip": x, "frames": torch.from_numpy(np.asarray(idx)), "seq": i}
        if "classification" in self.tasks:
            sample["label"] = torch.tensor(li.video_target, dtype=torch.long)
        if "segmentation" in self.tasks:
            sample["masks"] = out.masks
        if "detection" in self.tasks:
            sample["boxes"] = out.boxes
            sample["box_labels"] = out.box_labels
            sample["track_ids"] = out.track_ids
            sample["box_valid"] = torch.tensor(box_valid, dtype=torch.bool)
        return sample


def collate(batch: list[dict]) -> dict:
    out: dict = {
        "clip": torch.stack([b["clip"] for b in batch]),
        "frames": torch.stack([b["frames"] for b in batch]),
    }
    out["seq"] = [b["seq"] for b in batch]
    for key in ("label", "masks", "box_valid"):
        if key in batch[0]:
            out[key] = torch.stack([b[key] for b in batch])
    for key in ("boxes", "box_labels", "track_ids"):
        if key in batch[0]:
            out[key] = [b[key] for b in batch]
    return out


def resolve_classes(manifest: TrainingManifest, tasks: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Class lists for the heads, from the manifest, checked to exist for every requested task."""
    c = dict(manifest.classes)
    if not c.get("box") and c.get("mask"):
        c["box"] = c["mask"]
    if not c.get("mask") and c.get("box"):
        c["mask"] = c["box"]
    need = {"classification": "video", "segmentation": "mask", "detection": "box"}
    for t in tasks:
        if not c.get(need[t]):
            raise ValueError(
                f"{manifest.root or 'manifest'}: task {t!r} needs classes.{need[t]} in the training manifest, "
                "which has none"
            )
    return c


def check_files(seqs: Sequence[SequenceRef]) -> None:
    """Fail early, naming the file, when a video of the manifest is missing."""
    for s in seqs:
        if not Path(s.path).exists():
            raise FileNotFoundError(f"{s.path}: video of manifest entry {s.video.id!r} does not exist")
