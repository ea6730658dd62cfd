"""Probe a video file with PyAV before any decoder touches it.

decord can abort the process or spin forever on garbage, so every file is checked here first: it must exist, be a
regular non-empty file, open as a container with a video stream, and demux completely with every packet inside the
file. Demuxing (no decoding) also gives the exact frame count, the presentation timestamp of every frame (variable
frame rate handled) and which frames are keyframes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core_model.video.errors import VideoError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileProbe:
    path: Path
    codec: str
    width: int  # coded size, before rotation
    height: int
    rotation: int  # degrees counter-clockwise, one of 0/90/180/270
    time_base: float
    pts: np.ndarray  # int64 [N]: presentation timestamps in stream time base, ascending (frame i -> pts[i])
    keyframes: np.ndarray  # int64 [K]: frame indices (presentation order) of keyframes, ascending
    avg_fps: float  # container's average rate, 0 when unknown
    pts_reliable: bool = True  # False for AVI / raw streams: decoded frames are matched by counting instead
    container_format: str = ""

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def timestamps(self) -> np.ndarray:
        """Seconds from the first frame, float64 [N]."""
        return (self.pts - self.pts[0]).astype(np.float64) * self.time_base if len(self.pts) else np.zeros(0)


def check_regular_file(path: Path) -> int:
    """Size in bytes of a readable, non-empty regular file; VideoError otherwise."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VideoError(path, "file not found") from None
    except OSError as e:
        raise VideoError(path, f"cannot access file ({e.strerror or e})") from None
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise VideoError(path, "not a regular file (a device, pipe or socket cannot be read as a video)")
    if st.st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoError(path, "permission denied")
    return st.st_size


def _rotation_of(container, stream) -> int:
    """Display rotation (CCW degrees) from the first decoded frame's display matrix; 0 if none."""
    try:
        for frame in container.decode(stream):
            rot = int(round(getattr(frame, "rotation", 0) or 0))
            return rot % 360 if rot % 90 == 0 else 0
    except Exception as e:  # a file whose first frame cannot be decoded is reported by the caller
        raise VideoError(container.name, f"cannot decode the first frame ({e})") from None
    return 0


# (resolved path, size, mtime, inode) -> probe
_MEMO: OrderedDict[tuple[str, int, int, int], FileProbe] = OrderedDict()
_MEMO_SIZE = 64  # files; a probe is ~16 bytes per frame (an hour at 30 fps: ~1.7 MB)
_memo_lock = threading.Lock()
_disk_cache: Path | None = None
DISK_CACHE_FILES = 4096  # probes kept on disk (~0.5 MB for 30 minutes at 30 fps); the oldest go first
_DISK_FORMAT = 1
# a cached probe's scalar fields and their types (the arrays pts and keyframes are stored beside them)
_HEAD = {
    "codec": str,
    "width": int,
    "height": int,
    "rotation": int,
    "time_base": float,
    "avg_fps": float,
    "pts_reliable": bool,
    "container_format": str,
}


def set_probe_cache(folder: str | os.PathLike | None) -> None:
    """Keep probes on disk in ``folder`` (None: in memory only, the default).

    Demuxing a 30-minute 1080p file to index it costs ~0.5 s of CPU under the interpreter lock, and the first
    decoded frame (for the rotation) more; an application that opens the same files again in later sessions (the
    player opening a library video) reads the index back in milliseconds instead. An entry is used only while the
    file's resolved path, size, modification time and inode are those it was made from, so a changed or replaced
    file is probed (and validated) again. The folder holds file paths: give it a private one."""
    global _disk_cache
    _disk_cache = Path(folder) if folder is not None else None


def _disk_key(key: tuple[str, int, int, int]) -> str:
    return hashlib.sha256(repr(key).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _load_cached(folder: Path, key: tuple[str, int, int, int], path: Path) -> FileProbe | None:
    f = folder / f"{_disk_key(key)}.npz"
    try:
        with np.load(f, allow_pickle=False) as z:
            head = json.loads(str(z["head"]))
            if head.get("format") != _DISK_FORMAT or tuple(head.get("key", ())) != key:
                return None
            pts, keyframes = np.asarray(z["pts"], np.int64), np.asarray(z["keyframes"], np.int64)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or foreign entry: probe again (and overwrite it)
        log.info("probe cache entry %s unreadable (%s); probing %s again", f, e, path)
        return None
    if not len(pts) or not len(keyframes) or keyframes[0] != 0 or keyframes[-1] >= len(pts):
        return None
    try:
        return FileProbe(path=path, pts=pts, keyframes=keyframes, **{k: t(head[k]) for k, t in _HEAD.items()})
    except (KeyError, TypeError, ValueError):
        return None


def _store_cached(folder: Path, key: tuple[str, int, int, int], probe: FileProbe) -> None:
    from core_model.atomic import atomic_write

    head = {"format": _DISK_FORMAT, "key": list(key), **{k: getattr(probe, k) for k in _HEAD}}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, head=np.asarray(json.dumps(head)), pts=probe.pts, keyframes=probe.keyframes)

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(folder / f"{_disk_key(key)}.npz", write, mode=0o600)
        entries = list(folder.glob("*.npz"))
        if len(entries) > DISK_CACHE_FILES:
            entries.sort(key=lambda e: e.stat().st_mtime)
            for old in entries[: len(entries) - DISK_CACHE_FILES]:
                old.unlink(missing_ok=True)
    except OSError as e:  # a full or read-only disk costs the next open a probe, nothing else
        log.info("could not keep the probe of %s in %s (%s)", probe.path, folder, e)


def probe_file(path: str | os.PathLike) -> FileProbe:
    """Open, validate and index ``path``. Raises VideoError naming the file and the reason.

    The index of a file opened before in this process (or, with :func:`set_probe_cache`, in any earlier process) is
    reused while its size, mtime and inode are unchanged: demuxing reads the whole file, which takes seconds for an
    hour of HD video, and a reviewer goes back and forth between videos."""
    path = Path(path)
    size = check_regular_file(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), size, st.st_mtime_ns, st.st_ino)
    except OSError as e:
        raise VideoError(path, f"cannot access file ({e.strerror or e})") from None
    with _memo_lock:
        hit = _MEMO.get(key)
        if hit is not None:
            _MEMO.move_to_end(key)
            return hit if hit.path == path else dataclasses.replace(hit, path=path)
    folder = _disk_cache
    probe = _load_cached(folder, key, path) if folder is not None else None
    if probe is None:
        probe = _probe_file(path, size)
        if folder is not None:
            _store_cached(folder, key, probe)
    probe.pts.setflags(write=False)  # shared by every reader of the file
    probe.keyframes.setflags(write=False)
    with _memo_lock:
        _MEMO[key] = probe
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return probe


def _probe_file(path: Path, size: int) -> FileProbe:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as e:
        raise VideoError(path, f"not a readable video file ({_short(e)})") from None
    try:
        if not container.streams.video:
            raise VideoError(path, "no video stream in the file")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise VideoError(
                path, f"video stream has no frame size (codec {cc.name!r} unsupported or corrupt)"
            )
        if stream.time_base is None:
            raise VideoError(path, "video stream has no time base")
        time_base = float(stream.time_base)
        pts: list[int] = []
        key: list[bool] = []
        missing_ts = 0
        end = 0
        try:
            # each packet's fields read once (every read crosses into PyAV; a 30-minute file has 54,000 packets)
            for pkt in container.demux(stream):
                nbytes = pkt.size
                if nbytes == 0:  # flush packet at the end
                    continue
                ts = pkt.pts
                if ts is None:
                    ts = pkt.dts
                    if ts is None:
                        missing_ts += 1
                        ts = pts[-1] + 1 if pts else 0
                pts.append(ts)
                key.append(pkt.is_keyframe)
                pos = pkt.pos
                if pos is not None and pos >= 0 and pos + nbytes > end:
                    end = pos + nbytes
        except Exception as e:
            raise VideoError(
                path, f"truncated or corrupt: demuxing stopped after {len(pts)} frames ({_short(e)})"
            ) from None
        if not pts:
            raise VideoError(path, "video stream holds no frames (truncated or empty)")
        if end > size:
            raise VideoError(
                path, f"truncated: frame data runs to byte {end} but the file has only {size} bytes"
            )
        declared = int(stream.frames or 0)
        if declared > 0 and len(pts) < declared:
            raise VideoError(
                path, f"truncated: the header declares {declared} frames but only {len(pts)} exist"
            )
        if missing_ts:
            log.warning("%s: %d packets without timestamps; frame times are approximate", path, missing_ts)
        pts_arr = np.asarray(pts, dtype=np.int64)
        _check_duration(path, container, stream, pts_arr, time_base)
        fmt = str(container.format.name or "")
        # AVI has no presentation timestamps: with B-frames the demuxer's "pts" follow decode order and decoded
        # frames carry shuffled ones, so frames must be matched by counting from a keyframe.
        pts_reliable = missing_ts == 0 and "avi" not in fmt.split(",")
        order = np.argsort(pts_arr, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        keyframes = np.sort(rank[np.asarray(key, dtype=bool)])
        if len(keyframes) == 0 or keyframes[0] != 0:
            keyframes = np.unique(np.concatenate([[0], keyframes]))
        container.seek(0, stream=stream, backward=True)
        rotation = _rotation_of(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        return FileProbe(
            path=path,
            codec=str(cc.name),
            width=int(cc.width),
            height=int(cc.height),
            rotation=rotation,
            time_base=time_base,
            pts=pts_arr[order],
            keyframes=keyframes.astype(np.int64),
            avg_fps=float(rate) if rate else 0.0,
            pts_reliable=pts_reliable,
            container_format=fmt,
        )
    finally:
        container.close()


def _check_duration(path: Path, container, stream, pts: np.ndarray, time_base: float) -> None:
    """Matroska/WebM cut short demux cleanly; compare what was found with the duration in the header."""
    if len(pts) < 2:
        return
    step = float(np.median(np.diff(np.sort(pts)))) * time_base
    found = float(pts.max() - pts.min()) * time_base + step
    if stream.duration:
        declared, slack = float(stream.duration) * time_base, 2 * step + 0.01 * found
    elif container.duration and len(container.streams) == 1:
        declared, slack = container.duration / 1e6, 2 * step + 0.01 * found
    elif container.duration:  # other streams (audio) may run longer than the video
        declared, slack = container.duration / 1e6, 2 * step + 0.05 * found + 1.0
    else:
        return
    if found + slack < declared:
        raise VideoError(
            path, f"truncated: the header declares {declared:.2f} s but frames cover only {found:.2f} s"
        )


def _short(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if len(msg) < 200 else msg[:200] + "..."
