"""Event-loop stalls of the app: start-up time, and the longest / p99 stall while scrubbing and while a job runs.

A 2 ms heartbeat timer on the GUI thread records when it actually fires; a stall is a gap between beats beyond the
interval (the time the UI could not react). Phases, one JSON object per line (the last is the summary):

1. ``startup``: ``python -m endoreview`` until its window is shown and the event loop runs (median of 3 runs),
   and whether torch got imported (it must not);
2. ``idle`` (the app open on the video, doing nothing: the stalls the machine's load alone causes), then
   ``scrub_original`` / ``scrub_proxy``: the real main window on a 1080p GOP-250 video, seeking every 16 ms to
   random frames (a fast drag across the timeline), first before the proxy exists (the original is decoded with
   read-ahead), then with the proxy;
3. ``job``: an "Analyse" job runs (the demo model when installed, otherwise the tests' fast predictor) while the
   video plays, its JSON lines and result reloads arriving on the GUI thread.

    python benchmarks/ui_stall.py --small     # about a minute

On a given library and video instead of a generated one (issue 21 item 3: the 30-minute 1080p video with predictions
on every frame, e.g. the library ``benchmarks/procedure_scale.py`` writes)::

    python benchmarks/ui_stall.py --db RUN/library.sqlite3 --video-id 1

opens that video as a reviewer would (``open``: seconds to the first frame, and to the timeline's lanes and the
review session's labels), then measures the stalls while idle, while scrubbing the original, while the timeline's
lanes are zoomed and panned every 16 ms (``timeline``: the steps per second it kept up, the schedule of
``procedure_scale``'s ``timeline_fps``: from the whole video down to 10 s and across it) and while the video plays;
The video's file is indexed into the app's probe cache first, untimed (the state after importing it in the app);
``scrub_proxy`` only where the video already has a proxy (building one for 30 minutes takes about as long), and the
job phase only with ``--job-seconds`` (it adds a run to the library). The library is opened as it is (copy it first
to keep it unchanged: opening may upgrade its schema after a backup).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_parser, run_child  # noqa: E402
from scrub import cpu_name, emit, make_video  # noqa: E402


def startup_runs(n: int, data_dir: Path) -> dict:
    walls, internal, cpu, torch = [], [], [], []
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        ENDOREVIEW_DATA_DIR=str(data_dir),
        ENDOREVIEW_EXIT_AFTER_STARTUP="1",
    )
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-m", "endoreview"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO,
        )
        line = p.stdout.readline()
        walls.append(time.perf_counter() - t0)
        p.wait(timeout=60)
        rep = json.loads(line)
        internal.append(rep["startup_s"])
        cpu.append(rep["cpu_s"])
        torch.append(rep["torch_imported"])
    return {
        "runs": n,
        "wall_median_s": round(statistics.median(walls), 3),
        "wall_max_s": round(max(walls), 3),
        "in_process_median_s": round(statistics.median(internal), 3),
        "torch_imported": any(torch),
    }


class Heartbeat:
    """Beats of a 2 ms timer on the GUI thread, and the interpreter's garbage collections meanwhile (any thread's:
    a collection holds the interpreter lock, so a long one is a GUI stall whichever thread triggered it)."""

    def __init__(self, interval_ms: int = 2, trace: bool = False) -> None:
        import gc

        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000
        self.beats: list[float] = []
        self.collections: list[tuple[int, float]] = []  # (generation, seconds)
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        self.timer.start(interval_ms)
        self._cpu0 = time.thread_time()  # the GUI thread's CPU time at the phase's start
        # --trace: another thread samples the GUI thread's Python stack every 2 ms, so that the longest stall of a
        # phase can say where the GUI thread was (or that no sample came: the interpreter lock or the cores were
        # elsewhere)
        self.samples: list[tuple[float, str]] = []
        if trace:
            import threading

            threading.Thread(target=self._sample, args=(threading.main_thread().ident,), daemon=True).start()

    def _sample(self, gui: int) -> None:
        while True:
            frame = sys._current_frames().get(gui)
            where = []
            while frame is not None and len(where) < 6:
                code = frame.f_code
                where.append(f"{Path(code.co_filename).name}:{frame.f_lineno}:{code.co_name}")
                frame = frame.f_back
            self.samples.append((time.perf_counter(), " < ".join(where)))
            time.sleep(0.002)

    def _worst_stall_where(self, b: np.ndarray, gaps: np.ndarray) -> dict:
        """The longest stall's GUI-thread stacks (most frequent first) and the longest gap between samples in it."""
        from collections import Counter

        i = int(gaps.argmax())
        t0, t1 = b[i], b[i + 1]
        inside = [(t, w) for t, w in self.samples if t0 <= t <= t1]
        times = [t0, *(t for t, _ in inside), t1]
        return {
            # on the clock of time.perf_counter (CLOCK_MONOTONIC here: ``perf record -k CLOCK_MONOTONIC`` matches it)
            "worst_stall_at": [round(float(t0), 4), round(float(t1), 4)],
            "worst_stall_samples": len(inside),
            "worst_stall_sample_gap_ms": round(1e3 * float(np.diff(times).max()), 1),
            "worst_stall_where": Counter(w for _, w in inside).most_common(4),
        }

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections.append((int(info["generation"]), time.perf_counter() - self._gc_start))

    def take(self) -> dict:
        b = np.asarray(self.beats)
        self.beats = []
        gcs, self.collections = self.collections, []
        gaps = np.diff(b) if b.size > 1 else np.zeros(1)
        stall = np.maximum(gaps - self.interval, 0)
        gen2 = [s for g, s in gcs if g == 2]
        where = self._worst_stall_where(b, gaps) if self.samples and b.size > 1 else {}
        self.samples = []
        cpu, self._cpu0 = time.thread_time() - self._cpu0, time.thread_time()
        span = float(b[-1] - b[0]) if b.size > 1 else 0.0
        return {
            **where,
            # the share of the phase the GUI thread spent on the CPU (heartbeats included: ~2 % idle here)
            "gui_cpu_share": round(cpu / span, 3) if span else None,
            "beats": int(b.size),
            "stall_max_ms": round(1e3 * float(stall.max()), 1),
            "stall_p99_ms": round(1e3 * float(np.percentile(stall, 99)), 1),
            "stall_p50_ms": round(1e3 * float(np.percentile(stall, 50)), 2),
            "stalls_over_100ms": int((stall > 0.1).sum()),
            "gc_max_ms": round(1e3 * max((s for _, s in gcs), default=0.0), 1),
            "gc_gen2": len(gen2),
            "gc_gen2_max_ms": round(1e3 * max(gen2, default=0.0), 1),
        }


def _scrub_for(win, frames: int, seconds: float, rng: np.random.Generator) -> None:
    """Seek the player to a random frame every 16 ms for ``seconds``."""
    from PySide6.QtCore import QTimer

    from endoreview.ui.app import spin

    t = QTimer()
    t.timeout.connect(lambda: win.player.seek(int(rng.integers(0, frames))))
    t.start(16)
    spin(lambda: False, seconds)
    t.stop()


def _zoom_pan_for(win, frames: int, seconds: float) -> int:
    """Zoom and pan the timeline every 16 ms (procedure_scale's timeline_fps schedule, repeated); the steps made."""
    from PySide6.QtCore import QTimer

    from endoreview.ui.app import spin

    done = [0]

    def step() -> None:
        k = done[0] % 60
        span = max(300, int(frames / (1.25**k)))
        a = int((frames - span) * ((done[0] * 7919) % 60) / 59)
        win.timeline.setXRange(a, a + span, padding=0)
        done[0] += 1

    t = QTimer()
    t.timeout.connect(step)
    t.start(16)
    spin(lambda: False, seconds)
    t.stop()
    win.timeline.setXRange(0, frames, padding=0)
    return done[0]


def library_child(args: argparse.Namespace) -> int:
    """The phases on an existing library's video (``--db``, ``--video-id``)."""
    from types import SimpleNamespace

    from endoreview.media.guard import violations
    from endoreview.ui.app import create_main_window, spin

    win = create_main_window(SimpleNamespace(db=None, reviewer="bench"))
    win.resize(1366, 768)
    win.show()
    win.start()
    spin(lambda: bool(win.library.model.rows), 120)
    row = win.library.model.row_for(args.video_id)
    if row is None:
        raise SystemExit(
            f"video {args.video_id} is not in the library ({len(win.library.model.rows)} videos)"
        )
    n = row.frame_count
    # the state after importing it in the app: its index in the app's probe cache (the library was filled by
    # another process; untimed, before the phases)
    import threading

    from core_model.video.probe import probe_file

    indexing = threading.Thread(target=probe_file, args=(row.path,))
    indexing.start()
    spin(lambda: not indexing.is_alive(), 120)
    spin(lambda: win.edit_ctl is not None, 30)  # the player page, built once the library is listed
    hb = Heartbeat(trace=args.trace)
    t0 = time.perf_counter()
    win.open_video(row.video_id)
    spin(lambda: win.player.shown is not None, 120)
    first = time.perf_counter() - t0
    spin(lambda: win.review_ctl.tracks is not None, 120)
    tracks = time.perf_counter() - t0
    emit(
        {
            "step": "open",
            "frames": n,
            "first_frame_s": round(first, 3),
            "tracks_s": round(tracks, 3),
            "proxy": win.player._proxy is not None,
            **hb.take(),
        }
    )
    rng = np.random.default_rng(3)

    spin(lambda: False, 2.0)
    hb.take()
    spin(lambda: False, min(args.seconds, 8.0))
    import gc

    emit(
        {
            "step": "idle",
            **hb.take(),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "gc_tracked_objects": len(gc.get_objects()),
        }
    )
    _scrub_for(win, n, args.seconds, rng)
    emit({"step": "scrub_original" if win.player._proxy is None else "scrub_proxy", **hb.take()})
    spin(lambda: False, 1.0)
    hb.take()
    c0 = time.process_time()
    steps = _zoom_pan_for(win, n, args.seconds)
    cpu = time.process_time() - c0
    emit(
        {
            "step": "timeline",
            **hb.take(),
            "steps": steps,
            "steps_per_s": round(steps / args.seconds, 1),
            "cpu_ms_per_step": round(1e3 * cpu / max(steps, 1), 1),
        }
    )
    win.player.seek(n // 2)
    spin(lambda: False, 1.0)
    hb.take()
    win.player.play()
    late0 = win.player.late_frames
    spin(lambda: False, args.seconds)
    win.player.pause()
    emit({"step": "play", **hb.take(), "late_frames": win.player.late_frames - late0})
    if args.job_seconds_given:
        win.analysis_ctl.analyse(
            [row.video_id], model_dir=args.model
        ) if args.model else win.analysis_ctl.analyse([row.video_id])
        spin(lambda: bool(win.jobs.jobs), 30)
        win.player.play()
        hb.take()
        t0 = time.perf_counter()
        spin(
            lambda: not win.jobs.running or time.perf_counter() - t0 > args.job_seconds, args.job_seconds + 5
        )
        stats = hb.take()
        job = win.jobs.jobs[0].entry if win.jobs.jobs else None
        emit({"step": "job", **stats, "job_state": job.state if job else None})
        win.jobs.cancel_all()
        spin(lambda: not win.jobs.running, 10)
    emit({"step": "done", "gui_thread_violations": len(violations())})
    win._quit_confirmed = True
    win.close()
    return 0


def child(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.video_id:
        return library_child(args)
    from types import SimpleNamespace

    from endoreview.media.guard import violations
    from endoreview.ui.app import create_main_window, spin

    win = create_main_window(SimpleNamespace(db=None, reviewer="bench"))
    win.resize(1366, 768)
    win.show()

    win.media.stop()  # phase 1 scrubs the original: no proxy yet
    from endoreview.ui.proxies import MediaQueue

    win.start(paths=[args.video])
    spin(lambda: bool(win.library.model.rows), 120)
    row = win.library.model.rows[0]
    win.open_video(row.video_id)
    spin(lambda: win.player.shown is not None, 60)
    n = row.frame_count
    rng = np.random.default_rng(3)
    hb = Heartbeat(trace=args.trace)

    hb.take()
    spin(lambda: False, min(args.seconds, 8.0))  # the same app, idle: what the machine's load alone costs
    emit({"step": "idle", **hb.take(), "load_average_1min": round(os.getloadavg()[0], 1)})
    _scrub_for(win, n, args.seconds, rng)
    emit({"step": "scrub_original", **hb.take()})
    # build the proxy in the background (as the app does at import), then scrub again
    win.media = MediaQueue(win)
    win.media.proxyReady.connect(win.review_ctl._on_proxy)
    from endoreview.ui.proxies import MediaRequest

    win.media.request(MediaRequest(row.video_id, row.path, n, thumbs=False), urgent=True)
    spin(lambda: win.player._proxy is not None, 300)
    hb.take()
    _scrub_for(win, n, args.seconds, rng)
    emit({"step": "scrub_proxy", **hb.take()})
    # a job while the video plays
    if args.job_module:
        win.backend.jobs.job_module = args.job_module
    if args.model:
        win.analysis_ctl.analyse([row.video_id], model_dir=args.model)
    else:
        win.analysis_ctl.analyse([row.video_id])
    spin(lambda: bool(win.jobs.jobs), 30)
    win.player.seek(0)
    win.player.play()
    hb.take()
    t0 = time.perf_counter()
    spin(lambda: not win.jobs.running or time.perf_counter() - t0 > args.job_seconds, args.job_seconds + 5)
    stats = hb.take()
    job = win.jobs.jobs[0].entry if win.jobs.jobs else None
    emit(
        {
            "step": "job",
            **stats,
            "job_state": job.state if job else None,
            "job_seconds": round(time.perf_counter() - t0, 1),
            "gui_thread_violations": len(violations()),
        }
    )
    win.jobs.cancel_all()
    spin(lambda: not win.jobs.running, 10)
    win.close()
    return 0


def library_main(args: argparse.Namespace) -> int:
    db = Path(args.db).resolve()
    if not db.is_file():
        raise SystemExit(f"--db {db}: no such file")
    data = Path(tempfile.mkdtemp(prefix="stall-data-"))
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        ENDOREVIEW_DATA_DIR=str(data),
        ENDOREVIEW_DB_URL=f"sqlite:///{db}",
        PYTHONPATH=str(REPO),
    )
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--video-id",
        str(args.video_id),
        "--seconds",
        str(args.seconds),
    ]
    if args.trace:
        cmd.append("--trace")
    if args.job_seconds_given:
        cmd += ["--job-seconds", str(args.job_seconds)]
    if args.model:
        cmd += ["--model", args.model]
    try:
        res = run_child(cmd, env, REPO, "done")
    finally:
        shutil.rmtree(data, ignore_errors=True)  # the app's data folder (caches, logs) of this run only
    if res is None:
        return 1
    summary = {
        "summary": "ui_stall",
        "machine": cpu_name(),
        "cpus": os.cpu_count(),
        "library": str(db),
        "video_id": args.video_id,
        "frames": res["open"]["frames"],
        "open_first_frame_s": res["open"]["first_frame_s"],
        "open_tracks_s": res["open"]["tracks_s"],
        "load_average_1min": res["idle"]["load_average_1min"],
        "idle_stall_max_ms": res["idle"]["stall_max_ms"],
    }
    for phase in ("open", "scrub_original", "scrub_proxy", "timeline", "play", "job"):
        if phase in res:
            summary[f"{phase}_stall_max_ms"] = res[phase]["stall_max_ms"]
            summary[f"{phase}_stall_p99_ms"] = res[phase]["stall_p99_ms"]
            summary[f"{phase}_gui_cpu_share"] = res[phase].get("gui_cpu_share")
    summary["timeline_steps_per_s"] = res["timeline"]["steps_per_s"]
    summary["timeline_cpu_ms_per_step"] = res["timeline"]["cpu_ms_per_step"]
    summary["play_late_frames"] = res["play"]["late_frames"]
    summary["gui_thread_violations"] = res["done"]["gui_thread_violations"]
    emit(summary)
    return 0


def main() -> int:
    ap = benchmark_parser(__doc__, "8 s phases on a 10-second video")
    ap.add_argument("--seconds", type=float, default=None, help="scrubbing time per phase")
    ap.add_argument("--job-seconds", type=float, default=None)
    ap.add_argument("--keep", help="folder for the generated video")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    ap.add_argument("--model", help="model directory for the job phase (default: active or demo model)")
    ap.add_argument("--job-module", help="entry module of job processes (default endoreview.jobs)")
    ap.add_argument("--db", help="an existing library (SQLite file) to measure on, with --video-id")
    ap.add_argument("--video-id", type=int, default=None, help="the video of --db to open")
    ap.add_argument(
        "--trace", action="store_true", help="say where the GUI thread was in each phase's longest stall"
    )
    args = ap.parse_args()
    args.seconds = args.seconds or (8.0 if args.small else 30.0)
    args.job_seconds_given = args.job_seconds is not None
    args.job_seconds = args.job_seconds or (15.0 if args.small else 60.0)
    if args.child:
        return child(args)
    if args.db or args.video_id:
        if not (args.db and args.video_id):
            ap.error("--db and --video-id go together")
        return library_main(args)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="stall-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="stall-data-"))
    start = startup_runs(3, data / "startup")
    emit({"step": "startup", **start})
    video = work / "stall_1080p.mp4"
    if not video.exists():
        make_video(video, int((10 if args.small else 60) * 30))
    from endoreview.services.model_resolver import demo_model_dir

    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--video",
        str(video),
        "--seconds",
        str(args.seconds),
        "--job-seconds",
        str(args.job_seconds),
    ]
    if args.trace:
        cmd.append("--trace")
    predictor_note = "demo model"
    if args.model:
        cmd += ["--model", args.model]
        predictor_note = args.model
    elif demo_model_dir() is None:
        model = work / "no_weights_model"
        model.mkdir(exist_ok=True)
        (model / "model.json").write_text("{}")
        cmd += ["--model", str(model), "--job-module", "tests.ui.job_predictor"]
        predictor_note = "tests' fast predictor (demo model not installed)"
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        ENDOREVIEW_DATA_DIR=str(data / "app"),
        PYTHONPATH=str(REPO),
        JOB_PREDICTOR_DELAY="0.02",
    )
    try:
        res = run_child(cmd, env, REPO, "job")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if res is None:
        return 1
    emit(
        {
            "summary": "ui_stall",
            "machine": cpu_name(),
            "cpus": os.cpu_count(),
            "startup_wall_median_s": start["wall_median_s"],
            "startup_torch_imported": start["torch_imported"],
            "idle_stall_max_ms": res["idle"]["stall_max_ms"],
            "idle_stall_p99_ms": res["idle"]["stall_p99_ms"],
            "load_average_1min": res["idle"]["load_average_1min"],
            "scrub_original_stall_max_ms": res["scrub_original"]["stall_max_ms"],
            "scrub_original_stall_p99_ms": res["scrub_original"]["stall_p99_ms"],
            "scrub_proxy_stall_max_ms": res["scrub_proxy"]["stall_max_ms"],
            "scrub_proxy_stall_p99_ms": res["scrub_proxy"]["stall_p99_ms"],
            "job_stall_max_ms": res["job"]["stall_max_ms"],
            "job_stall_p99_ms": res["job"]["stall_p99_ms"],
            "job_predictor": predictor_note,
            "gui_thread_violations": res["job"]["gui_thread_violations"],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
