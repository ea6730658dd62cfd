"""App start with a full library, and opening a video: the two waits every session begins with (issue 23).

    python benchmarks/app_open.py            # 200 videos in the library, 3 runs
    python benchmarks/app_open.py --small    # 40 videos, 2 runs

Set-up (not timed): a fresh data folder whose database holds ``--videos`` imported videos, every one analysed (a
prediction run with per-frame class probabilities, so the library computes its "finding" and uncertainty columns),
and one 1280x720 video of 250 frames analysed with a mask and a box on every frame, with the scrubbing proxy the app
builds at import (``--no-proxy`` leaves it out: the open then also starts building it).

Then the app runs once, untimed, until its media queue is idle: every video's proxy and preview strip made, as on
any day after the one the videos were imported.

Timed, each run in a new process (``QT_QPA_PLATFORM=offscreen``):

* ``start_s``: from starting ``endoreview`` (the same composition root as the desktop entry point) to a usable
  library window: the window shown and every library row listed.
* ``open_s``: from asking the player to open the 720p video to its first frame on screen with the model's overlays
  (mask and box) drawn on it, ``--think-s`` (1 s) after the library was listed (a reviewer does not click sooner;
  the app imports the decoders meanwhile). ``--think-s 0`` measures the worst case.

Each run also reports the process's CPU seconds for the same spans and the machine's load average: on a shared
machine the wall times grow with the load, the CPU seconds much less.

Prints one JSON object per step and a last summary line naming the machine and the medians.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_parser, cpu_name, emit  # noqa: E402


def _frames(seed: int, n: int, w: int, h: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        f = base.copy()
        f[: h // 8, : (i * w) // max(n, 1) + 1] = 255
        yield f


def build_library(data: Path, n_videos: int, proxy: bool = True) -> dict:
    """The database and videos the timed runs open (in ``data``, as ENDOREVIEW_DATA_DIR)."""
    os.environ["ENDOREVIEW_DATA_DIR"] = str(data)
    import numpy as np

    from core_model.contract import rle_encode
    from core_model.video import write_video
    from endoreview.media.opener import use_probe_cache
    from endoreview.services.library import LibraryService
    from endoreview.services.predictions import PredictionRecorder
    from endoreview.services.projects import ProjectService
    from endoreview.store import Store

    videos = data / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    use_probe_cache()  # as the app does: an import indexes each file once
    with Store.open(None, reviewer="bench") as store:
        project = ProjectService(store).default_project()
        lib = LibraryService(store)
        big = write_video(videos / "procedure_720p.mp4", _frames(0, 250, 1280, 720), fps=25.0, gop=25, crf=23)
        paths = [big] + [
            write_video(videos / f"video_{k:03d}.mp4", _frames(k, 30, 96, 64), fps=25.0, gop=30, crf=30)
            for k in range(1, n_videos)
        ]
        if proxy:
            from endoreview.media.proxy import build_proxy

            build_proxy(big)
        ids = []
        for p in paths:
            v, _ = lib.import_video(project.id, p)
            ids.append(v.id)
        mv = store.add_model_version("bench-model", architecture="bench", files_dir=str(data), notes="")
        m = np.zeros((720, 1280), np.uint8)
        m[200:400, 300:600] = 1
        rle = rle_encode(m)
        for vid in ids:
            n = store.get_video(vid).frame_count
            rec = PredictionRecorder(store, vid, mv.id, batch_frames=256)
            for i in range(n):
                p = 0.8 if (i + vid) % 3 == 0 else 0.2
                ev = {"event": "frame", "frame": i, "probs": {"normal": 1 - p, "abnormal": p}}
                if vid == ids[0]:
                    ev["masks"] = [{"label": "polyp", "score": 0.9, "rle": rle}]
                    ev["boxes"] = [{"label": "polyp", "score": 0.9, "bbox": [300, 200, 600, 400]}]
                rec.handle(ev)
            rec.handle({"event": "video_done", "probs": {"normal": 0.5, "abnormal": 0.5}})
    return {
        "videos": len(ids),
        "open_video_id": ids[0],
        "proxy": proxy,
        "setup_s": round(time.perf_counter() - t0, 1),
    }


WARM = r"""
import json, sys
from types import SimpleNamespace
from endoreview.ui.app import create_main_window, ensure_app, spin
app = ensure_app()
win = create_main_window(SimpleNamespace(db=None, reviewer="bench"))
win.show()
win.start()
ok = spin(lambda: len(win.library.model.rows) >= int(sys.argv[1]), 120)
spin(lambda: False, 3)
ok = ok and spin(lambda: win.media.pending == 0, 900, step=0.05)
print(json.dumps({"event": "warm", "ok": ok}), flush=True)
win._quit_confirmed = True
win.close()
"""


def warm_library(data: Path, n_rows: int) -> float:
    """Run the app once until its media queue is idle: the proxies and preview strips of every video made, as on
    any day after the one the videos were imported (the timed runs then measure a usual start, not the first)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", ENDOREVIEW_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    env.pop("ENDOREVIEW_DB_URL", None)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", WARM, str(n_rows)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1200,
    )
    if '"ok": true' not in out.stdout:
        raise SystemExit(f"warming the library failed: {out.stdout[-500:]} {out.stderr[-2000:]}")
    return round(time.perf_counter() - t0, 1)


CHILD = r"""
import json, resource, sys, time
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
from types import SimpleNamespace
from endoreview.ui.app import create_main_window, ensure_app, spin, run_app
app = ensure_app()
win = create_main_window(SimpleNamespace(db=None, reviewer="bench"))
win.show()
win.start()
n_rows, vid, think = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ok = spin(lambda: len(win.library.model.rows) >= n_rows, 120)
print(json.dumps({"event": "library", "ok": ok, "rows": len(win.library.model.rows), "cpu_s": round(cpu(), 3)}),
      flush=True)
spin(lambda: False, think)  # the reviewer looks at the library before opening a video
overlay = win.player_widget.view.overlay
t0, c0 = time.perf_counter(), cpu()
win.open_video(vid)
ok = spin(lambda: win.player.shown == (0, True) and len(overlay.visible_masks()) > 0
          and len(overlay.visible_boxes()) > 0, 60)
print(json.dumps({"event": "opened", "ok": ok, "open_s": round(time.perf_counter() - t0, 3),
                  "cpu_s": round(cpu() - c0, 3)}), flush=True)
win._quit_confirmed = True
win.close()
"""


def timed_run(data: Path, n_rows: int, vid: int, think: float) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", ENDOREVIEW_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    env.pop("ENDOREVIEW_DB_URL", None)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(n_rows), str(vid), str(think)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lib = json.loads(p.stdout.readline())
    start_s = time.perf_counter() - t0
    opened = json.loads(p.stdout.readline() or "{}")
    p.wait(timeout=60)
    if not (lib.get("ok") and opened.get("ok")):
        raise SystemExit(f"run failed: {lib} {opened} {p.stderr.read()[-2000:]}")
    return {
        "start_s": round(start_s, 3),
        "start_cpu_s": lib["cpu_s"],
        "open_s": opened["open_s"],
        "open_cpu_s": opened["cpu_s"],
        "rows": lib["rows"],
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = benchmark_parser(__doc__, "40 videos, 2 runs")
    ap.add_argument("--videos", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument(
        "--think-s",
        type=float,
        default=1.0,
        help="pause between the library being listed and the open (default 1)",
    )
    ap.add_argument("--no-proxy", action="store_true", help="no scrubbing proxy for the opened video")
    ap.add_argument("--keep", help="data folder to build in and reuse (default: a new temporary one)")
    args = ap.parse_args()
    n = args.videos or (40 if args.small else 200)
    runs = args.runs or (2 if args.small else 3)
    data = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="app-open-bench-"))
    marker = data / "bench-library.json"
    proxy = not args.no_proxy
    known = json.loads(marker.read_text()) if marker.is_file() else {}
    if known.get("videos") == n and known.get("proxy") == proxy:
        setup = known
    else:
        setup = build_library(data, n, proxy)
        setup["warm_s"] = warm_library(data, n)
        marker.write_text(json.dumps(setup))
    emit({"step": "setup", **setup})
    results = []
    for k in range(runs):
        r = timed_run(data, n, setup["open_video_id"], args.think_s)
        emit({"step": "run", "run": k, **r})
        results.append(r)
    emit(
        {
            "summary": "app_open",
            "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, no GPU used (offscreen Qt)",
            "videos": n,
            "proxy": proxy,
            "think_s": args.think_s,
            "runs": runs,
            "start_median_s": round(statistics.median(r["start_s"] for r in results), 3),
            "start_max_s": max(r["start_s"] for r in results),
            "open_median_s": round(statistics.median(r["open_s"] for r in results), 3),
            "open_max_s": max(r["open_s"] for r in results),
            "start_cpu_median_s": round(statistics.median(r["start_cpu_s"] for r in results), 3),
            "open_cpu_median_s": round(statistics.median(r["open_cpu_s"] for r in results), 3),
            "load_avg_1min": round(statistics.median(r["load_avg_1min"] for r in results), 2),
            "targets": {"start_s": 2.0, "open_s": 0.5},
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
