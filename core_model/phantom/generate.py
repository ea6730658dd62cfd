"""Write phantom videos to disk: ``<name>.mp4`` (H.264 via libx264, else MPEG-4) + ``<name>.json`` ground truth,
and a training manifest listing a set of them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from core_model.phantom.groundtruth import PhantomGroundTruth
from core_model.phantom.render import PhantomStream
from core_model.phantom.sites import SiteStyle

log = logging.getLogger(__name__)


def generate_video(
    out_dir: str | os.PathLike,
    name: str,
    seed: int,
    n_frames: int = 64,
    size: int = 256,
    site: str | SiteStyle = "default",
    fps: float = 30,
    crf: float = 18,
    polyp_scale: float = 1.0,
) -> Path:
    """Render a phantom video and write ``out_dir/<name>.mp4`` and ``out_dir/<name>.json``; returns the mp4 path.

    The video is H.264 (MPEG-4 Part 2 where libx264 is missing) at high quality (crf 18) with a keyframe every 32
    frames, so models see the content rather than the codec; the ground truth is exact for the rendered frames."""
    from core_model.video import default_codec, write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid video name {name!r}")
    # one frame in memory at a time
    stream = PhantomStream(seed, n_frames=n_frames, size=size, site=site, fps=fps, polyp_scale=polyp_scale)
    preset = "veryfast" if default_codec() == "libx264" else None
    video = write_video(out / f"{name}.mp4", stream, fps=fps, crf=crf, gop=min(n_frames, 32), preset=preset)
    gt = stream.ground_truth
    assert gt is not None
    gt.save(out / f"{name}.json", video_file=video.name)
    log.info("phantom %s: seed %d, %s, %s", name, seed, gt.video_label, gt.segments)
    return video


def manifest_video(gt: PhantomGroundTruth, video_id: str, video_path: str):
    """A ``core_model.data.manifest.ManifestVideo`` carrying every frame's masks and boxes (dense labels)."""
    from core_model.data.manifest import BoxLabel, FrameLabels, ManifestVideo, MaskLabel, Segment

    frames = []
    for i in range(gt.num_frames):
        rles = gt.rles(i)
        boxes = gt.boxes(i)
        frames.append(
            FrameLabels(
                frame=i,
                masks=tuple(MaskLabel(label="polyp", rle=rles[t], track_id=t) for t, _ in boxes),
                boxes=tuple(BoxLabel(label="polyp", bbox=tuple(b), track_id=t) for t, b in boxes),
                negative=not boxes,
            )
        )
    return ManifestVideo(
        id=video_id,
        path=video_path,
        split="unassigned",
        num_frames=gt.num_frames,
        fps=gt.fps,
        width=gt.width,
        height=gt.height,
        video_label=gt.video_label,
        segments=tuple(Segment(s, e, lab) for s, e, lab in gt.segments),
        frames=tuple(frames),
        site=gt.site,
        dense=True,
    )
