"""``endofm cut-clips``: cut long procedure videos into pretraining clips the way the official pipeline did.

Reference §4.1 (``data/trans_videos_pretrain.py``): clips of 150 frames (5 s at 30 fps), the last clip of a video
absorbing the remainder (150–299 frames), a video shorter than 150 frames giving one clip; frames resized with
OpenCV (bilinear) so the short side is 256, aspect kept (the long side rounded to an even number for the encoder);
clips written at 30 fps. A video at another frame rate is resampled to 30 fps by nearest earlier frame. Writes
``OUT/<video>_<k:05>.mp4`` and the official clip list ``OUT/train.csv`` (``<absolute path>,-1`` per row).

```
endofm cut-clips VIDEO|FOLDER [...] --out DIR [--csv FILE] [--clip-seconds 5] [--fps 30] [--short-side 256]
```
A video that cannot be read is reported (JSON ``error`` event) and skipped; the others are still cut.
Progress is printed as JSON lines: ``{"event": "video_done", "video": .., "clips": n}``, then ``{"event": "done"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["cut_video", "main", "resize_short_side"]


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize ``frame [H, W, 3]`` so min(H, W) == short_side; the other side is rounded to an even number."""
    import cv2

    h, w = frame.shape[:2]
    if h <= w:
        new_h, new_w = short_side, max(2, int(round(w * short_side / h / 2)) * 2)
    else:
        new_w, new_h = short_side, max(2, int(round(h * short_side / w / 2)) * 2)
    if (new_h, new_w) == (h, w):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def _resampled(frames: Iterator[np.ndarray], fps_in: float, fps_out: float) -> Iterator[np.ndarray]:
    """Frames at ``fps_out``: output frame k is the source frame floor(k * fps_in / fps_out)."""
    if not fps_in or fps_in <= 0 or abs(fps_in - fps_out) / fps_out < 0.01:
        yield from frames
        return
    k = 0
    for i, frame in enumerate(frames):
        while int(k * fps_in / fps_out) == i:
            yield frame
            k += 1


def cut_video(
    video: Path,
    out_dir: Path,
    clip_frames: int = 150,
    fps: float = 30.0,
    short_side: int = 256,
) -> list[Path]:
    """Cut one video into clips in ``out_dir``; returns the clip paths in order."""
    from core_model.video import VideoReader, write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    buffer: list[np.ndarray] = []

    def flush(frames: list[np.ndarray]) -> None:
        path = out_dir / f"{video.stem}_{len(written):05}.mp4"
        write_video(path, frames, fps=fps)
        written.append(path)

    with VideoReader(video) as reader:
        for frame in _resampled(iter(reader), reader.meta.fps, fps):
            buffer.append(resize_short_side(frame, short_side))
            if len(buffer) == 2 * clip_frames:  # the first half is a full clip that is certainly not the last
                flush(buffer[:clip_frames])
                buffer = buffer[clip_frames:]
    if buffer:
        flush(buffer)  # the last clip: 150–299 frames, or the whole (short) video
    return written


def _inputs(paths: list[str]) -> list[Path]:
    from core_model.pretrain.data import VIDEO_EXTENSIONS

    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            )
        else:
            found.append(p)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="endofm cut-clips", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="videos or folders of videos")
    parser.add_argument("--out", required=True, help="folder for the clips")
    parser.add_argument("--csv", default=None, help="clip list to write (default OUT/train.csv)")
    parser.add_argument("--clip-seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--short-side", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.short_side < 2 or args.short_side % 2:
        parser.error("--short-side must be an even number >= 2")
    if args.fps <= 0 or args.clip_seconds <= 0:
        parser.error("--fps and --clip-seconds must be positive")
    out = Path(args.out)
    csv_path = Path(args.csv) if args.csv else out / "train.csv"
    clip_frames = max(1, int(round(args.clip_seconds * args.fps)))
    videos = _inputs(args.inputs)
    if not videos:
        print(json.dumps({"event": "error", "message": "no videos found in the inputs"}), flush=True)
        return 2
    rows: list[str] = []
    failed = 0
    for video in videos:
        try:
            clips = cut_video(video, out, clip_frames, args.fps, args.short_side)
        except Exception as exc:  # one unreadable video never stops the others
            failed += 1
            log.warning("skipping %s: %s", video, exc)
            print(json.dumps({"event": "error", "video": str(video), "message": str(exc)}), flush=True)
            continue
        rows.extend(f"{c.resolve()},-1" for c in clips)
        print(json.dumps({"event": "video_done", "video": str(video), "clips": len(clips)}), flush=True)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    tmp.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    tmp.replace(csv_path)
    print(
        json.dumps(
            {
                "event": "done",
                "videos": len(videos),
                "failed": failed,
                "clips": len(rows),
                "csv": str(csv_path),
            }
        ),
        flush=True,
    )
    return 0 if rows else 1
