"""Spreading a reviewer's corrections over time: optical-flow mask propagation and linear box interpolation.

* :func:`warp_mask` moves a mask from one frame to the next with dense optical flow (OpenCV Farnebäck).
* :func:`propagate_mask` carries the mask of a frame forward or backward, frame by frame, up to (not including)
  the next user keyframe (:func:`endoreview.services.editing.is_keyframe`), the end of the video or ``max_frames``;
  it also stops where the carried mask shrinks below a quarter or grows past four times its starting area (the
  object left the view, or the flow smeared it).
  Results are stored with origin ``propagated``; earlier propagated / interpolated masks on those frames are
  replaced, a hand-edited frame never is. One call = one undoable action on the :class:`EditingService` stack.
* :func:`interpolate_boxes` fills the frames between consecutive keyframe boxes of one track linearly (as CVAT
  tracks do), origin ``interpolated``; again one undoable action.

Frames come from a ``read_frames(indices) -> uint8[K, H, W, 3]`` callable (e.g. ``VideoReader.get_batch``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core_model.contract import rle_decode, rle_encode
from endoreview.services.editing import DERIVED_ORIGINS, EditingService, is_keyframe
from endoreview.store.records import Label, LabelKind, LabelOrigin, NewLabel, ReviewState

log = logging.getLogger(__name__)

ReadFrames = Callable[[Sequence[int]], np.ndarray]


@dataclass(frozen=True)
class PropagationResult:
    frames: tuple[int, ...]  # frames that received a propagated mask
    stopped_at: int | None  # the keyframe that stopped it (None: end of video or max_frames)
    reason: str


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def warp_mask(src_frame: np.ndarray, dst_frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask of ``src_frame`` moved onto ``dst_frame`` (dense flow from dst to src, then a backward remap)."""
    import cv2

    g_src, g_dst = _gray(src_frame), _gray(dst_frame)
    flow = cv2.calcOpticalFlowFarneback(g_dst, g_src, None, 0.5, 4, 21, 3, 5, 1.1, 0)  # dst -> src
    h, w = mask.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(
        mask.astype(np.float32),
        gx + flow[..., 0],
        gy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return (warped >= 0.5).astype(np.uint8)


def _frame_masks(
    svc: EditingService, video_id: int, class_name: str, a: int, b: int
) -> dict[int, list[Label]]:
    out: dict[int, list[Label]] = {}
    for x in svc.store.labels_for_video(video_id, kinds=[LabelKind.MASK], frames=(a, b)):
        if x.class_name == class_name and x.frame is not None and x.state != ReviewState.REJECTED:
            out.setdefault(x.frame, []).append(x)
    return out


def propagate_mask(
    svc: EditingService,
    video_id: int,
    frame: int,
    read_frames: ReadFrames,
    *,
    forward: bool = True,
    class_name: str = "polyp",
    max_frames: int = 300,
) -> PropagationResult:
    """Propagate the mask of ``frame`` until the next keyframe (see module docstring)."""
    video = svc.store.get_video(video_id)
    src = svc.mask_target(video_id, frame, class_name)
    if src is None or not src.rle:
        raise ValueError(f"frame {frame + 1} has no {class_name} mask to propagate")
    step = 1 if forward else -1
    last = min(video.frame_count - 1, frame + max_frames) if forward else max(0, frame - max_frames)
    lo, hi = (frame, last + 1) if forward else (last, frame + 1)
    existing = _frame_masks(svc, video_id, class_name, lo, hi)
    targets, stopped = [], None
    for f in range(frame + step, last + step, step):
        if any(is_keyframe(x) for x in existing.get(f, [])):
            stopped = f
            break
        targets.append(f)
    if not targets:
        why = f"frame {stopped + 1} is a keyframe" if stopped is not None else "no frames in that direction"
        return PropagationResult((), stopped, f"nothing to propagate: {why}")
    mask = rle_decode(src.rle)
    area0 = int(mask.sum())
    frames = read_frames([frame, *targets])
    new, remove, done = [], [], []
    prev = frames[0]
    for k, f in enumerate(targets, start=1):
        mask = warp_mask(prev, frames[k], mask)
        prev = frames[k]
        area = int(mask.sum())
        if area < 0.25 * area0 or area > 4 * area0:  # gone out of view, or the flow smeared it over the wall
            log.info("propagation lost the object at frame %d (area %d vs %d)", f, area, area0)
            break
        remove += [
            x for x in existing.get(f, []) if x.origin in DERIVED_ORIGINS or x.state == ReviewState.SUGGESTED
        ]
        new.append(
            NewLabel(
                video_id,
                LabelKind.MASK,
                class_name,
                origin=LabelOrigin.PROPAGATED,
                frame=f,
                rle=rle_encode(mask),
                track_id=src.track_id,
            )
        )
        done.append(f)
    # suggestions on those frames are superseded (rejected would lose them as negatives: we only drop derived)
    remove = [x for x in remove if x.origin in DERIVED_ORIGINS]
    direction = "forward" if forward else "backward"
    summary = f"Propagate mask {direction} from frame {frame + 1} ({len(done)} frames)"
    if new:
        svc.store.replace_labels(
            [x.id for x in remove], new, expected_versions={x.id: x.version for x in remove}, summary=summary
        )
        svc.record(summary)
    if stopped is not None and len(done) == len(targets):
        reason = f"stopped before keyframe {stopped + 1}"
    elif len(done) < len(targets):
        reason = f"object lost after frame {(done[-1] if done else frame) + 1}"
        stopped = None
    else:
        reason = "reached the end of the range"
    return PropagationResult(tuple(done), stopped, reason)


def lerp_box(a: Sequence[float], b: Sequence[float], t: float) -> tuple[float, float, float, float]:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def interpolate_boxes(svc: EditingService, video_id: int, track_id: int) -> list[int]:
    """Linear boxes between consecutive keyframe boxes of ``track_id``; returns the frames filled."""
    boxes = [
        x
        for x in svc.store.labels_for_video(video_id, kinds=[LabelKind.BOX], suggestions=False)
        if x.track_id == track_id
    ]
    keys = sorted((x for x in boxes if is_keyframe(x) and x.frame is not None), key=lambda x: x.frame or 0)
    derived = {x.frame: x for x in boxes if x.origin in DERIVED_ORIGINS}
    key_frames = {x.frame for x in keys}
    new, remove, filled = [], [], []
    for a, b in zip(keys, keys[1:]):
        fa, fb = int(a.frame or 0), int(b.frame or 0)
        for f in range(fa + 1, fb):
            if f in key_frames:
                continue
            t = (f - fa) / (fb - fa)
            if f in derived:
                remove.append(derived.pop(f))
            new.append(
                NewLabel(
                    video_id,
                    LabelKind.BOX,
                    a.class_name,
                    origin=LabelOrigin.INTERPOLATED,
                    frame=f,
                    bbox=lerp_box(a.bbox or (0, 0, 1, 1), b.bbox or (0, 0, 1, 1), t),
                    track_id=track_id,
                )
            )
            filled.append(f)
    if not new:
        return []
    summary = f"Interpolate track {track_id} ({len(filled)} frames)"
    svc.store.replace_labels(
        [x.id for x in remove], new, expected_versions={x.id: x.version for x in remove}, summary=summary
    )
    svc.record(summary)
    return filled
