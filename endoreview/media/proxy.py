"""Seek-friendly proxies: the original at display resolution, short-GOP H.264 without B-frames (PyAV/libx264).

Random access in a 1080p H.264 file with a 250-frame GOP costs ~0.3 s median because every decoder starts at the
previous keyframe. A proxy with a keyframe every ``gop`` frames at display resolution costs a few milliseconds, so
the player shows proxy frames while scrubbing and swaps in the original frame once the playhead rests.

Frame *i* of a proxy is frame *i* of the original (constant frame rate, ``pts == i``). A JSON side-car records the
source's size and modification time and the frame count; :func:`find_proxy` ignores stale or incomplete proxies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from endoreview.media.guard import check_off_gui_thread

log = logging.getLogger(__name__)

PROXY_FORMAT_VERSION = 1


class ProxyError(RuntimeError):
    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ProxyCancelled(ProxyError):
    pass


@dataclass(frozen=True)
class ProxySpec:
    max_height: int = 540
    max_width: int = 960
    gop: int = 4
    crf: int = 27
    preset: str = "veryfast"


@dataclass(frozen=True)
class ProxyInfo:
    path: str
    source: str
    source_size: int
    source_mtime: float
    frame_count: int
    fps: float
    width: int
    height: int
    source_width: int
    source_height: int
    gop: int
    build_seconds: float
    bytes: int
    version: int = PROXY_FORMAT_VERSION


def proxy_dir() -> Path:
    from endoreview.paths import cache_dir

    d = cache_dir() / "proxies"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_proxy_path(source: Path | str) -> Path:
    src = Path(source).resolve()
    digest = hashlib.sha1(str(src).encode("utf-8")).hexdigest()[:16]
    return proxy_dir() / f"{src.stem[:40]}-{digest}.mp4"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".proxy.json")


def partial_path(out: Path | str) -> Path:
    """Where :func:`build_proxy` writes ``out`` before renaming it into place (never read as a proxy)."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def find_proxy(source: Path | str, proxy_path: Path | str | None = None) -> ProxyInfo | None:
    """The proxy for ``source`` if one exists and matches the source file as it is now; else ``None``."""
    src = Path(source)
    path = Path(proxy_path) if proxy_path else default_proxy_path(src)
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        info = ProxyInfo(**json.loads(side.read_text()))
        st = src.stat()
    except (OSError, TypeError, ValueError) as exc:
        log.info("ignoring proxy %s: %s", path, exc)
        return None
    if info.version != PROXY_FORMAT_VERSION or info.source_size != st.st_size:
        return None
    if abs(info.source_mtime - st.st_mtime) > 1e-3:
        return None
    from endoreview.paths import mark_used

    mark_used(path, side)
    return info


def proxy_size(src_w: int, src_h: int, spec: ProxySpec) -> tuple[int, int]:
    scale = min(1.0, spec.max_height / src_h, spec.max_width / src_w)
    w = max(2, int(round(src_w * scale / 2)) * 2)
    h = max(2, int(round(src_h * scale / 2)) * 2)
    return w, h


def _source_frames(src: Path, w: int, h: int) -> tuple[Iterator, Fraction, int, int, int]:
    """Yield av.VideoFrame-like objects already scaled to (w, h) plus rate, source size and expected count."""
    import av

    container = av.open(str(src))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or Fraction(30)
    sw, sh = stream.codec_context.width, stream.codec_context.height

    def gen() -> Iterator:
        try:
            for k, frame in enumerate(container.decode(stream)):
                if k == 0 and int(round(getattr(frame, "rotation", 0) or 0)) % 360:
                    # the reader shows such files upright; a proxy of the stored pictures would not match it
                    raise ProxyError(
                        src, f"rotated {frame.rotation:.0f} degrees: scrubbing reads the original"
                    )
                yield frame.reformat(width=w, height=h, format="yuv420p")
        finally:
            container.close()

    return gen(), Fraction(rate), sw, sh, int(stream.frames or 0)


def build_proxy(
    source: Path | str,
    out_path: Path | str | None = None,
    spec: ProxySpec = ProxySpec(),
    *,
    on_progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ProxyInfo:
    """Transcode ``source`` into a proxy (written to a temp file, renamed into place). Runs off the GUI thread."""
    import av

    from core_model.atomic import atomic_write_text

    check_off_gui_thread("proxy", str(source))
    src = Path(source)
    if not src.is_file():
        raise ProxyError(src, "file not found")
    out = Path(out_path) if out_path else default_proxy_path(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    st = src.stat()
    t0 = time.perf_counter()
    try:
        probe = av.open(str(src))
        try:
            vs = probe.streams.video[0]
            sw, sh = vs.codec_context.width, vs.codec_context.height
        finally:
            probe.close()
    except (av.FFmpegError, IndexError) as exc:
        raise ProxyError(src, f"not a readable video ({exc})") from exc

    w, h = proxy_size(sw, sh, spec)
    frames, rate, sw, sh, expected = _source_frames(src, w, h)
    rate = rate.limit_denominator(1001 * 1000)
    tmp = partial_path(out)
    n = 0
    try:
        with av.open(str(tmp), "w", format="mp4") as dst:
            vs = dst.add_stream("libx264", rate=rate)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.codec_context.gop_size = spec.gop
            vs.codec_context.max_b_frames = 0
            vs.options = {
                "preset": spec.preset,
                "tune": "fastdecode",
                "crf": str(spec.crf),
                "keyint_min": str(spec.gop),
                "sc_threshold": "0",
                "bf": "0",
            }
            for frame in frames:
                if should_cancel is not None and should_cancel():
                    raise ProxyCancelled(src, "cancelled")
                frame.pts = n
                frame.time_base = Fraction(1) / rate
                for packet in vs.encode(frame):
                    dst.mux(packet)
                n += 1
                if on_progress is not None and n % 30 == 0:
                    on_progress(n, expected)
            for packet in vs.encode():
                dst.mux(packet)
    except ProxyError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ProxyError(src, f"proxy build failed: {exc}") from exc
    finally:
        close = getattr(frames, "close", None)
        if close:
            close()
    if n == 0:
        tmp.unlink(missing_ok=True)
        raise ProxyError(src, "no frames decoded")
    os.replace(tmp, out)
    info = ProxyInfo(
        path=str(out),
        source=str(src.resolve()),
        source_size=st.st_size,
        source_mtime=st.st_mtime,
        frame_count=n,
        fps=float(rate),
        width=w,
        height=h,
        source_width=sw,
        source_height=sh,
        gop=spec.gop,
        build_seconds=time.perf_counter() - t0,
        bytes=out.stat().st_size,
    )
    atomic_write_text(_sidecar(out), json.dumps(asdict(info), indent=1))
    if on_progress is not None:
        on_progress(n, n)
    return info


class ProxyReader:
    """Frame-exact random access into a proxy; sequential reads continue decoding without seeking."""

    def __init__(self, path: Path | str, fps: float | None = None) -> None:
        import av

        check_off_gui_thread("open", str(path))
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise ProxyError(path, f"cannot open proxy ({exc})") from exc
        self._stream.thread_count = 1
        self._rate = Fraction(self._stream.average_rate or Fraction(fps or 30)).limit_denominator(1001 * 1000)
        self._tb = self._stream.time_base
        self._frames = int(self._stream.frames or 0)
        self._decoder: Iterator | None = None
        self._next = -1  # index of the next frame the decoder yields, -1 when unknown
        self.seeks = 0

    def __len__(self) -> int:
        return self._frames

    def _index(self, frame) -> int:
        return int(round(frame.pts * self._tb * self._rate))

    def __getitem__(self, index: int) -> np.ndarray:
        check_off_gui_thread("decode", f"{self.path.name}[{index}]")
        index = int(index)
        if index < 0:
            index += self._frames
        if not 0 <= index < max(self._frames, 1):
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self._frames - 1}")
        if self._decoder is None or not (0 <= self._next <= index < self._next + 32):
            pts = int(Fraction(index) / self._rate / self._tb)
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
            self._decoder = self._container.decode(self._stream)
            self.seeks += 1
        for frame in self._decoder:
            i = self._index(frame)
            self._next = i + 1
            if i == index:
                return frame.to_ndarray(format="rgb24")
            if i > index:
                break
        self._decoder, self._next = None, -1
        raise ProxyError(self.path, f"frame {index} not found")

    def get_batch(self, indices: list[int]) -> np.ndarray:
        return np.stack([self[i] for i in indices])

    def close(self) -> None:
        self._decoder = None
        self._container.close()

    def __enter__(self) -> ProxyReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
