"""Random frame-exact access latency and sequential decode speed: our VideoReader vs OpenCV.

Generates a 1080p H.264 file with a 250-frame GOP (3 B-frames) and a 480p H.264 file (60-frame GOP) whose frames
carry their own index as a block code, then for each file and reader measures:

- ``seek``: median and p95 latency of reading one frame at a random index (fresh seek each time, in random order);
- ``exact``: how many of those frames were the frame asked for (read back from the block code);
- ``sequential_fps``: frames per second decoding from the start in order.

Readers: ``endoreview`` (``VideoReader``, auto backend = decord), ``endoreview-pyav`` (the PyAV fallback used where
decord is missing) and ``opencv`` (``cv2.VideoCapture`` + ``CAP_PROP_POS_FRAMES``), all in the same run. Also one
line timing the phantom generator (256x256, 64 frames). One JSON object per line; the last is the summary.

    python benchmarks/video_seek.py            # full: 750-frame files, 50 seeks (a few minutes)
    python benchmarks/video_seek.py --small    # 260-frame files, 5 seeks (about a minute of CPU)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import benchmark_parser, cpu_name, read_stamp, stamp


def make_file(
    path: Path, width: int, height: int, n: int, gop: int, fps: float = 25.0, preset: str = "veryfast"
) -> dict:
    """Phantom colonoscopy content upscaled to ``width`` x ``height``, fine sensor grain, index code."""
    import cv2

    from core_model.phantom import render_video
    from core_model.video import write_video

    base, _ = render_video(7, n_frames=min(n, 128), size=256)
    rng = np.random.default_rng(0)
    grain = [rng.normal(0, 3.0, (height, width, 1)).astype(np.int16) for _ in range(7)]
    side = height

    def frames():
        for i in range(n):
            # ping-pong over the rendered clip so the content keeps moving
            j = i % (2 * len(base) - 2) if len(base) > 1 else 0
            j = j if j < len(base) else 2 * len(base) - 2 - j
            sq = cv2.resize(base[j], (side, side), interpolation=cv2.INTER_LINEAR)
            f = np.zeros((height, width, 3), np.uint8)
            x0 = (width - side) // 2
            f[:, x0 : x0 + side] = sq
            f = np.clip(f.astype(np.int16) + grain[i % 7], 0, 255).astype(np.uint8)
            stamp(f, i)
            yield f

    t0 = time.perf_counter()
    write_video(path, frames(), fps=fps, codec="libx264", gop=gop, bframes=3, crf=20, preset=preset)
    return {
        "file": path.name,
        "width": width,
        "height": height,
        "frames": n,
        "gop": gop,
        "bframes": 3,
        "codec": "h264",
        "preset": preset,
        "bytes": path.stat().st_size,
        "write_s": round(time.perf_counter() - t0, 2),
    }


class OpenCVReader:
    def __init__(self, path: Path):
        import cv2

        self.cv2 = cv2
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise RuntimeError(f"OpenCV cannot open {path}")

    def frame(self, i: int) -> np.ndarray:
        self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, i)
        ok, f = self.cap.read()
        if not ok:
            raise RuntimeError(f"OpenCV could not read frame {i}")
        return self.cv2.cvtColor(f, self.cv2.COLOR_BGR2RGB)

    def sequential(self, n: int):
        self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
        for _ in range(n):
            ok, f = self.cap.read()
            if not ok:
                return
            yield self.cv2.cvtColor(f, self.cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class OurReader:
    def __init__(self, path: Path, backend: str):
        from core_model.video import VideoReader

        self.r = VideoReader(path, backend=backend)

    def frame(self, i: int) -> np.ndarray:
        return self.r[i]

    def sequential(self, n: int):
        for start in range(0, n, 16):
            yield from self.r.get_batch(range(start, min(start + 16, n)))

    def close(self) -> None:
        self.r.close()


def measure(name: str, make, path: Path, n_frames: int, indices: list[int], n_seq: int) -> dict:
    t0 = time.perf_counter()
    reader = make(path)
    open_s = time.perf_counter() - t0
    lat, exact = [], 0
    for i in indices:
        t = time.perf_counter()
        f = reader.frame(i)
        lat.append(time.perf_counter() - t)
        exact += read_stamp(f) == i
    t = time.perf_counter()
    seq_ok = 0
    count = 0
    for k, f in enumerate(reader.sequential(n_seq)):
        seq_ok += read_stamp(f) == k
        count += 1
    seq_s = time.perf_counter() - t
    reader.close()
    lat_ms = sorted(x * 1000 for x in lat)
    p95 = lat_ms[min(len(lat_ms) - 1, int(np.ceil(0.95 * len(lat_ms))) - 1)]
    return {
        "event": "result",
        "file": path.name,
        "reader": name,
        "open_ms": round(open_s * 1000, 1),
        "seek_median_ms": round(statistics.median(lat_ms), 1),
        "seek_p95_ms": round(p95, 1),
        "seeks": len(indices),
        "exact": f"{exact}/{len(indices)}",
        "sequential_fps": round(count / seq_s, 1) if seq_s > 0 else None,
        "sequential_exact": f"{seq_ok}/{count}",
    }


def phantom_speed(repeats: int = 3) -> dict:
    from core_model.phantom import render_video

    render_video(0, n_frames=8, size=64)  # warm imports
    wall, cpu = [], []
    for seed in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        render_video(seed, n_frames=64, size=256)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {
        "event": "phantom_render",
        "frames": 64,
        "size": 256,
        "median_wall_s": round(statistics.median(wall), 3),
        "median_cpu_s": round(statistics.median(cpu), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "short files and few seeks (about a minute on 2 cores)")
    ap.add_argument("--seeks", type=int, default=None, help="random seeks per file and reader")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep the generated files here (reused if present)"
    )
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(2)
    n = 260 if args.small else 750
    seeks = args.seeks or (5 if args.small else 50)
    n_seq = 60 if args.small else 500
    tmp = None
    work = args.workdir
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="video_seek_")
        work = Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    files = [("1080p_gop250.mp4", 1920, 1080, 250), ("480p_gop60.mp4", 854, 480, 60)]
    print(json.dumps(phantom_speed()), flush=True)
    results = []
    for fname, w, h, gop in files:
        path = work / f"{'small_' if args.small else ''}{fname}"
        if not path.exists():
            info = make_file(path, w, h, n, gop, preset="superfast" if args.small else "veryfast")
            print(json.dumps({"event": "file", **info}), flush=True)
        rng = np.random.default_rng(1)
        indices = rng.integers(0, n, size=seeks).tolist()
        for name, make in (
            ("endoreview", lambda p: OurReader(p, "auto")),
            ("endoreview-pyav", lambda p: OurReader(p, "pyav")),
            ("opencv", OpenCVReader),
        ):
            res = measure(name, make, path, n, indices, n_seq)
            results.append(res)
            print(json.dumps(res), flush=True)
    summary = {
        "event": "summary",
        "machine": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "mode": "small" if args.small else "full",
        "results": {
            f"{r['file']}:{r['reader']}": {
                k: r[k] for k in ("seek_median_ms", "seek_p95_ms", "exact", "sequential_fps")
            }
            for r in results
        },
    }
    print(json.dumps(summary), flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
