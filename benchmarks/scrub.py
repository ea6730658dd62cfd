"""Scrubbing and playback in the player: random seeks timed from request to frame painted, against decord.

Steps, one JSON object per line (the last is the summary):

1. ``video``: writes a 1080p H.264 file with a 250-frame GOP (the worst case clinicians' recorders produce);
2. ``decord``: a plain random ``decord.VideoReader`` read of that original, per frame (the baseline);
3. ``proxy``: builds the seek-friendly proxy (``endoreview.media.proxy``): build time, size, size per hour;
4. ``scrub`` (a fresh process, empty frame cache, the real player widget offscreen): ``--seeks`` seeks to uniformly
   random frames, each timed from ``PlayerController.seek`` to the ImageItem having painted that frame;
   frame-exactness of the painted frames is checked from a block code stamped in every frame;
5. ``playback`` (same process): native-fps playback with overlays (a mask + box per frame) for ``--play-seconds``;
   dropped frames = frame indices between the first and last presented that were never painted.

    python benchmarks/scrub.py            # 3 min of 1080p video, 200 seeks, 60 s playback (several minutes)
    python benchmarks/scrub.py --small    # 20 s of video, 200 seeks, 10 s playback (about a minute)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BITS, benchmark_parser, cpu_name, emit, read_stamp, run_child, stamp

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def make_video(path: Path, n: int, w: int = 1920, h: int = 1080) -> None:
    """Camera-like motion over a mucosa-coloured texture, GOP 250, H.264."""
    import cv2

    from core_model.video import write_video

    rng = np.random.default_rng(0)
    tex_small = rng.random((90, 160)).astype(np.float32)
    tex = cv2.resize(tex_small, (w + 400, h + 300), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(
        rng.random((360, 640)).astype(np.float32), (w + 400, h + 300), interpolation=cv2.INTER_LINEAR
    )
    t = 0.7 * tex + 0.3 * fine
    base = np.stack([150 + 90 * t, 60 + 70 * t, 60 + 60 * t], axis=-1).clip(0, 255).astype(np.uint8)

    def frames():
        for i in range(n):
            x = int(200 + 180 * np.sin(i / 45.0))
            y = int(150 + 120 * np.cos(i / 60.0))
            f = base[y : y + h, x : x + w].copy()
            stamp(f, i)
            yield f

    write_video(path, frames(), fps=30.0, gop=250, crf=23, preset="veryfast")


def decord_baseline(path: Path, n_frames: int, seeks: int) -> dict:
    from core_model.video.backends import import_decord

    decord = import_decord()

    rng = np.random.default_rng(1)
    idx = rng.integers(0, n_frames, seeks)
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    lat, exact = [], 0
    for i in idx:
        t0 = time.perf_counter()
        f = vr[int(i)].asnumpy()
        lat.append(time.perf_counter() - t0)
        exact += int(read_stamp(f) == int(i) % (1 << BITS))
    return {"seeks": seeks, "median_s": statistics.median(lat), "p95_s": pct(lat, 95), "exact": exact}


# ---- the child: a fresh process with the real player ----------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from core_model.video import VideoReader
    from endoreview.media.cache import FrameCache
    from endoreview.media.guard import mark_gui_thread, violations
    from endoreview.media.proxy import ProxyReader, find_proxy
    from endoreview.ui.player.controller import PlayerController, VideoSource
    from endoreview.ui.player.widget import PlayerWidget
    from endoreview.ui.tracks import PredictionTrack

    QApplication([])
    mark_gui_thread(strict=False)
    pg.setConfigOptions(imageAxisOrder="row-major")
    video = Path(args.video)
    info = find_proxy(video, args.proxy)
    assert info is not None, "proxy missing"
    with VideoReader(video) as r:
        meta = r.meta
    ctl = PlayerController(FrameCache(768 * 1024 * 1024))
    w = PlayerWidget(ctl)
    w.resize(1280, 760)
    w.show()
    src = VideoSource(
        key=1,
        path=str(video),
        frame_count=meta.frame_count,
        fps=meta.fps,
        width=meta.width,
        height=meta.height,
        open_original=lambda: VideoReader(
            video, backend="pyav"
        ),  # as the app does (endoreview.ui.review_controller)
        open_proxy=lambda: ProxyReader(info.path, info.fps),
        proxy_size=(info.width, info.height),
    )
    painted: dict[int, float] = {}
    w.view.image.painted.connect(lambda i, t: painted.setdefault(i, t))

    def spin_until(cond, timeout: float) -> bool:
        from endoreview.ui.app import spin

        return spin(cond, timeout, 0.0005)

    ctl.open(src, start=0)
    spin_until(lambda: 0 in painted, 30)
    rng = np.random.default_rng(2)
    targets = [int(i) for i in rng.integers(1, meta.frame_count, args.seeks)]
    lat, exact, timeouts = [], 0, 0
    for i in targets:
        painted.pop(i, None)
        t0 = time.perf_counter()
        ctl.seek(i)
        if not spin_until(lambda i=i: i in painted, 10):
            timeouts += 1
            continue
        lat.append(painted[i] - t0)
        img = np.asarray(w.view.image.image)
        exact += int(read_stamp(img) == i % (1 << BITS))
    emit(
        {
            "step": "scrub",
            "seeks": args.seeks,
            "median_s": statistics.median(lat),
            "p95_s": pct(lat, 95),
            "max_s": max(lat),
            "exact": exact,
            "timeouts": timeouts,
            "proxy_seeks": True,
        }
    )

    # playback with overlays on
    from core_model.contract import rle_encode

    m = np.zeros((meta.height, meta.width), np.uint8)
    m[400:700, 800:1200] = 1
    rle = rle_encode(m)
    track = PredictionTrack(meta.frame_count)
    for k in range(meta.frame_count):
        track.add(
            {
                "frame": k,
                "probs": {"normal": 0.3, "abnormal": 0.7},
                "masks": [{"label": "polyp", "score": 0.9, "rle": rle}],
                "boxes": [{"label": "polyp", "score": 0.9, "bbox": [800, 400, 1200, 700]}],
            }
        )
    w.set_predictions(track)
    start = 10
    ctl.pause()
    ctl.seek(start)
    spin_until(lambda: ctl.shown is not None and ctl.shown[0] == start, 10)
    spin_until(lambda: False, 1.0)  # let read-ahead fill
    painted.clear()
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    ctl.play()
    n_play = int(min(args.play_seconds * meta.fps, meta.frame_count - start - 2))
    spin_until(lambda: ctl.current >= start + n_play, args.play_seconds * 2 + 10)
    ctl.pause()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    wall = time.perf_counter() - wall0
    frames = sorted(k for k in painted if start <= k <= start + n_play)
    first, last = frames[0], frames[-1]
    dropped = (last - first + 1) - len(frames)
    ts = sorted(painted[k] for k in frames)
    gaps = np.diff(ts) if len(ts) > 1 else np.zeros(1)
    emit(
        {
            "step": "playback",
            "seconds": round(ts[-1] - ts[0], 2),
            "fps_target": meta.fps,
            "frames_painted": len(frames),
            "dropped_frames": int(dropped),
            "fps_achieved": round((len(frames) - 1) / max(ts[-1] - ts[0], 1e-9), 2),
            "gap_p99_ms": round(1e3 * pct(list(gaps), 99), 1),
            "gap_max_ms": round(1e3 * float(gaps.max()), 1),
            "cpu_ms_per_painted_frame": round(1e3 * cpu / max(len(frames), 1), 1),
            "cpu_cores_used": round(cpu / max(wall, 1e-9), 2),
            "gui_thread_violations": len(violations()),
        }
    )
    ctl.close()
    return 0


def main() -> int:
    ap = benchmark_parser(__doc__, "20 s of video, 10 s playback (about a minute)")
    ap.add_argument("--seeks", type=int, default=200)
    ap.add_argument("--baseline-seeks", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="video length")
    ap.add_argument("--play-seconds", type=float, default=None)
    ap.add_argument("--keep", help="folder to keep the generated files in")
    ap.add_argument(
        "--proxy-gop", type=int, default=None, help="proxy keyframe interval (default: the app's)"
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    ap.add_argument("--proxy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    seconds = args.seconds or (20.0 if args.small else 180.0)
    play = args.play_seconds or (10.0 if args.small else 60.0)
    base_seeks = args.baseline_seeks or (20 if args.small else 60)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scrub-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    video = work / "gop250_1080p.mp4"
    n = int(seconds * 30)
    if not video.exists():
        t0 = time.perf_counter()
        make_video(video, n)
        emit(
            {
                "step": "video",
                "frames": n,
                "size": "1920x1080",
                "gop": 250,
                "encode_s": round(time.perf_counter() - t0, 1),
            }
        )
    base = decord_baseline(video, n, base_seeks)
    emit({"step": "decord", **base})

    from endoreview.media.proxy import ProxySpec, build_proxy

    proxy_path = work / "gop250_1080p.proxy.mp4"
    spec = ProxySpec(gop=args.proxy_gop) if args.proxy_gop else ProxySpec()
    info = build_proxy(video, proxy_path, spec)
    per_hour = info.bytes / (info.frame_count / info.fps) * 3600
    emit(
        {
            "step": "proxy",
            "build_s": round(info.build_seconds, 2),
            "build_x_realtime": round((n / 30) / info.build_seconds, 2),
            "bytes": info.bytes,
            "gb_per_hour": round(per_hour / 1e9, 2),
            "size": f"{info.width}x{info.height}",
            "gop": info.gop,
        }
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    results = run_child(
        [
            sys.executable,
            __file__,
            "--child",
            "--video",
            str(video),
            "--proxy",
            str(proxy_path),
            "--seeks",
            str(args.seeks),
            "--play-seconds",
            str(play),
        ],
        env,
        REPO,
        "scrub",
    )
    if results is None:
        return 1
    scrub, pb = results["scrub"], results.get("playback", {})
    emit(
        {
            "summary": "scrub",
            "machine": cpu_name(),
            "cpus": os.cpu_count(),
            "video": f"1080p H.264 GOP 250, {seconds:.0f} s",
            "decord_random_median_s": round(base["median_s"], 4),
            "decord_random_p95_s": round(base["p95_s"], 4),
            "scrub_median_s": round(scrub["median_s"], 4),
            "scrub_p95_s": round(scrub["p95_s"], 4),
            "p95_speedup": round(base["p95_s"] / scrub["p95_s"], 1),
            "bar_p95_speedup": 20,
            "scrub_exact": f"{scrub['exact']}/{scrub['seeks']}",
            "proxy_build_s": round(info.build_seconds, 2),
            "proxy_gb_per_hour": round(per_hour / 1e9, 2),
            "playback_seconds": pb.get("seconds"),
            "playback_dropped_frames": pb.get("dropped_frames"),
            "playback_fps": pb.get("fps_achieved"),
            "playback_cpu_ms_per_frame": pb.get("cpu_ms_per_painted_frame"),
            "load_average_1min": round(os.getloadavg()[0], 1),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
