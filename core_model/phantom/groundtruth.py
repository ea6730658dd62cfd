"""Exact per-frame ground truth of a phantom video, and its JSON file (format in docs/phantom.md)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core_model.atomic import atomic_write_text
from core_model.contract import rle_area, rle_decode, rle_encode
from core_model.finetune.metrics import mask_to_boxes

GT_FORMAT = "endoreview.phantom-gt"
GT_VERSION = 1


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read; names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Track:
    track_id: int
    kind: str  # sessile | pedunculated
    first_frame: int  # -1 if never visible
    last_frame: int  # inclusive; -1 if never visible
    radius: float  # world units


@dataclass
class PhantomGroundTruth:
    """Per-frame instance masks (track id per pixel), boxes, labels and segments of one phantom video."""

    num_frames: int
    width: int
    height: int
    fps: float
    site: str
    seed: int
    tracks: list[Track]
    lumen: np.ndarray  # float32 [T, 2]: pixel position of the lumen centre (vanishing point)
    polyp_scale: float = 1.0  # the render's polyp_scale (files written before it was recorded: 1)
    _masks: np.ndarray | None = None  # uint8 [T, H, W] (rendered in memory)
    _rles: list[dict[int, dict]] | None = None  # per frame {track_id: rle} (loaded from JSON)
    _boxes: list[list[tuple[int, list[float]]]] = field(default_factory=list)

    @classmethod
    def from_masks(cls, masks: np.ndarray, **kw: Any) -> PhantomGroundTruth:
        gt = cls(
            num_frames=int(masks.shape[0]),
            height=int(masks.shape[1]),
            width=int(masks.shape[2]),
            _masks=masks,
            **kw,
        )
        gt._boxes = [mask_to_boxes(m) for m in masks]
        return gt

    # -- per frame -------------------------------------------------------------------------------------------
    def instance_mask(self, i: int) -> np.ndarray:
        """uint8 [H, W]: 0 background, k where polyp track k is visible."""
        if not 0 <= i < self.num_frames:
            raise IndexError(f"frame {i} out of range [0, {self.num_frames})")
        if self._masks is not None:
            return self._masks[i].copy()
        out = np.zeros((self.height, self.width), np.uint8)
        for tid, rle in sorted(self._rles[i].items()):
            m = rle_decode(rle)
            out[m.astype(bool)] = tid
        return out

    def boxes(self, i: int) -> list[tuple[int, list[float]]]:
        """[(track_id, [x0, y0, x1, y1])] in pixels, x1/y1 exclusive."""
        return [(t, list(b)) for t, b in self._boxes[i]]

    @property
    def frame_has_polyp(self) -> np.ndarray:
        return np.array([len(b) > 0 for b in self._boxes], dtype=np.bool_)

    @property
    def video_label(self) -> str:
        return "abnormal" if self.frame_has_polyp.any() else "normal"

    @property
    def segments(self) -> list[tuple[int, int, str]]:
        """Runs of frames showing at least one polyp: [(start, end_exclusive, "polyp")]."""
        has = self.frame_has_polyp.astype(np.int8)
        edges = np.diff(np.concatenate([[0], has, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(int(s), int(e), "polyp") for s, e in zip(starts, ends)]

    def rles(self, i: int) -> dict[int, dict]:
        """{track_id: COCO RLE} for frame i (counts as str)."""
        if self._rles is not None:
            return self._rles[i]
        out = {}
        m = self._masks[i]
        for tid, _ in self._boxes[i]:
            out[tid] = rle_encode(m == tid)
        return out

    # -- file ------------------------------------------------------------------------------------------------
    def to_json(self, video_file: str = "") -> dict[str, Any]:
        frames = []
        for i in range(self.num_frames):
            rles = self.rles(i)
            insts = []
            for tid, box in self._boxes[i]:
                rle = rles[tid]
                insts.append(
                    {
                        "track_id": tid,
                        "label": "polyp",
                        "bbox": [float(v) for v in box],
                        "area": _area(self, i, tid),
                        "rle": rle,
                    }
                )
            frames.append(
                {"frame": i, "lumen": [round(float(v), 2) for v in self.lumen[i]], "instances": insts}
            )
        return {
            "format": GT_FORMAT,
            "version": GT_VERSION,
            "video": video_file,
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "site": self.site,
            "seed": self.seed,
            "polyp_scale": self.polyp_scale,
            "video_label": self.video_label,
            "segments": [{"start": s, "end": e, "label": lab} for s, e, lab in self.segments],
            "tracks": [t.__dict__ for t in self.tracks],
            "frames": frames,
        }

    def save(self, path: str | os.PathLike, video_file: str = "") -> Path:
        path = Path(path)
        data = self.to_json(video_file)
        return atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def _area(gt: PhantomGroundTruth, i: int, tid: int) -> int:
    if gt._masks is not None:
        return int((gt._masks[i] == tid).sum())
    return rle_area(gt._rles[i][tid])


def load_ground_truth(path: str | os.PathLike) -> PhantomGroundTruth:
    """Read a ``<name>.json`` written by ``generate_video``. Raises GroundTruthError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GroundTruthError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GroundTruthError(path, f"not a JSON file ({e})") from None
    if not isinstance(data, dict) or data.get("format") != GT_FORMAT:
        raise GroundTruthError(path, f"not a phantom ground-truth file (format must be {GT_FORMAT!r})")
    if data.get("version") != GT_VERSION:
        raise GroundTruthError(
            path, f"unsupported version {data.get('version')!r} (this code reads {GT_VERSION})"
        )
    try:
        n = int(data["num_frames"])
        frames = data["frames"]
        if len(frames) != n:
            raise GroundTruthError(path, f"{len(frames)} frame entries for {n} frames")
        rles = [{int(inst["track_id"]): inst["rle"] for inst in f["instances"]} for f in frames]
        boxes = [
            [(int(inst["track_id"]), [float(v) for v in inst["bbox"]]) for inst in f["instances"]]
            for f in frames
        ]
        lumen = np.array([f.get("lumen", [np.nan, np.nan]) for f in frames], np.float32).reshape(n, 2)
        gt = PhantomGroundTruth(
            num_frames=n,
            width=int(data["width"]),
            height=int(data["height"]),
            fps=float(data["fps"]),
            site=str(data["site"]),
            seed=int(data["seed"]),
            tracks=[Track(**t) for t in data["tracks"]],
            lumen=lumen,
            polyp_scale=float(data.get("polyp_scale", 1.0)),
            _rles=rles,
            _boxes=boxes,
        )
    except GroundTruthError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise GroundTruthError(path, f"malformed ground truth ({type(e).__name__}: {e})") from None
    return gt
