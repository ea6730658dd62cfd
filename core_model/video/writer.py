"""``write_video``: encode RGB frames to a file with PyAV (H.264 via libx264 when available, else MPEG-4).

The file is written through ``core_model.atomic.atomic_write`` (a hidden temporary name next to the target, renamed
into place at the end), so a failure never leaves a half-written video under the requested name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np

from core_model.atomic import atomic_write
from core_model.video.errors import VideoError

log = logging.getLogger(__name__)


def default_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _frames(frames) -> Iterable[np.ndarray]:
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        return iter(frames)
    return frames


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    codec: str | None = None,
    gop: int | None = None,
    crf: float | None = None,
    *,
    bframes: int | None = None,
    preset: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (RGB uint8 [H, W, 3] each, or one [T, H, W, 3] array) to ``path``; returns the path.

    ``codec``: an FFmpeg encoder name; default libx264 (H.264) if available, else mpeg4. ``gop``: keyframe
    interval in frames. ``crf``: quality (H.264 scale 0-51, lower is better; mapped to a fixed quantiser for
    MPEG-4). ``bframes``/``preset``: H.264 B-frame count and x264 preset. ``options``: extra encoder options.
    The container follows the suffix (.mp4, .mkv, .avi, .mov, .webm). Width and height must be even.
    Raises VideoError naming the file and the reason.
    """
    import av

    path = Path(path)
    if fps <= 0:
        raise VideoError(path, f"fps must be positive, not {fps}")
    codec = codec or default_codec()
    if codec not in av.codecs_available:
        raise VideoError(path, f"encoder {codec!r} is not available in this PyAV build")
    if not path.parent.is_dir():
        raise VideoError(path, "the folder does not exist")
    opts: dict[str, str] = {}
    is_x264 = codec.startswith("libx264")
    if crf is not None:
        if is_x264 or codec == "libx265":
            opts["crf"] = f"{crf:g}"
        elif codec.startswith("libvpx"):
            opts.update(crf=str(int(np.clip(round(crf * 63 / 51), 0, 63))), b="0")
        else:
            q = str(int(np.clip(round(2 + crf / 51 * 29), 1, 31)))
            opts.update(qmin=q, qmax=q)
    if gop is not None:
        opts["g"] = str(int(gop))
        if is_x264:
            opts["keyint_min"] = str(int(gop))
            opts["sc_threshold"] = "0"  # no extra keyframes at scene cuts: the GOP is what was asked
    if bframes is not None:
        opts["bf"] = str(int(bframes))
    if preset is not None and is_x264:
        opts["preset"] = preset
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    opts.update(options or {})
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # the JPEG encoder wants full-range YUV
    rate = Fraction(fps).limit_denominator(1001)
    count = 0

    def encode(tmp: Path) -> None:
        nonlocal count
        with av.open(str(tmp), mode="w") as container:
            stream = None
            for frame in _frames(frames):
                frame = np.asarray(frame)
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise VideoError(
                        path, f"frame {count} must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}"
                    )
                h, w = frame.shape[:2]
                if stream is None:
                    if h % 2 or w % 2:
                        raise VideoError(path, f"frame size {w}x{h} must be even for yuv420p video")
                    stream = container.add_stream(codec, rate=rate, options=opts)
                    stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
                    if gop is not None:
                        stream.codec_context.gop_size = int(gop)
                elif (h, w) != (stream.height, stream.width):
                    raise VideoError(
                        path, f"frame {count} is {w}x{h}, earlier frames {stream.width}x{stream.height}"
                    )
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = count
                vf.time_base = 1 / rate
                for packet in stream.encode(vf):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise VideoError(path, "no frames to write")
            for packet in stream.encode():
                container.mux(packet)

    try:
        atomic_write(path, encode, keep_suffix=True)
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(path, f"encoding failed after {count} frames ({e})") from e
    log.debug("wrote %s: %d frames, %s, %.3f fps", path, count, codec, float(rate))
    return path
