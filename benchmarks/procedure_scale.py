"""A real procedure, end to end: long 1080p H.264 videos from import to export, each stage in its own process.

Videos: a moving texture with a burned-in frame counter (``core_model.video.synthetic.write_long_video``: one
minute is encoded, then its packets are copied end to end, so a 30-minute file takes seconds), 1920x1080, 30 fps,
keyframe every 250 frames. Lengths: 1, 5 and 30 minutes (``--small``: 1 and 3). Per length, one JSON line per stage:

- ``import``: ``python -m endoreview.interchange import videos`` (hash, metadata) into a fresh SQLite library, the
  process's wall time (``seconds``, the summary's ``import_s``: interpreter start-up, modules and the new library's
  schema included); ``app_import_s`` (the summary's ``import_app_s``): the app's import call alone
  (``LibraryService.import_video`` with its library open, timed inside another child);
- ``proxy``: ``endoreview.media.proxy.build_proxy`` (the scrubbing proxy the app builds in the background);
- ``analysis``: ``endofm predict`` with the bundled demo model on every frame (frames/s, x real time, CPU seconds
  per video second);
- ``db_write``: the predictions recorded into the library (``PredictionRecorder``, the app's predict job path):
  seconds, database growth, and that growth per hour of video;
- ``timeline_load``: what opening the video reads for the timeline and the player (``load_s``): the run's stored
  per-frame summary (``Store.run_summary``: the class and detection lanes), every label row of the video and the
  open suggestions of the review session's first window of frames (the full snapshot); the store's per-frame label
  counts (``timeline_summary``, ``label_summary_s``: not read by the app); also one window of suggestions in the middle (``window_s``: what moving the playhead far away
  reads), the library's per-video summary (``library_s``) and, for comparison, reading every mask and box of the
  run at once (``geometry_load_s``, what the player read up front before);
- ``player_open``: ``VideoReader`` open + first frame + a frame in the middle;
- ``timeline_fps``: the app's ``TimelineWidget`` (offscreen, 1600x220) over every frame of the video with two class
  lanes, the detection lane and a segment every 20 s: first draw, then 60 zoom/pan steps from the whole procedure
  down to 10 s, each repainted once as in the app (``paints`` counts them): steps per second, the worst step and
  the median step's CPU time;
- ``ui_stall``: ``benchmarks/ui_stall.py --db`` on a copy of the library: the real app (offscreen) opens the video
  with its predictions (first frame, lanes and labels) and the GUI thread's longest stall is measured while idle,
  scrubbing, zooming the timeline and playing (the summary's ``ui_stall_max_ms``: the longest of them all);
- ``export_coco`` / ``export_cvat``: ``python -m endoreview.interchange export`` of the run.

``--tile-from PREDS``: the same with an earlier run's ``preds.jsonl`` for every length (no analysis at all).

``--tile-predictions``: instead of analysing each length (hours for 30 minutes on this CPU), the first length's
``endofm predict`` output is repeated end to end (frame numbers shifted) to the longer lengths, so the stages after
analysis (database, timeline, player, export) are measured at full length; their lines say ``"predictions":
"tiled"``.

Before the lengths, ``realtime_720p``: issue 20's bar, ``endofm predict`` on a 10-second 1280x720 clip (x real time
of the prediction itself and of the whole process including Python, torch and model start-up).

Every stage reports its process's peak resident memory (``peak_mb``, from ``wait4``). The last line is the summary:
the machine, the bar figures, and the analysis memory slope in MB per 1,000 frames (a least-squares fit of the
analysis peaks over the lengths; the bar is ~0).

    python benchmarks/procedure_scale.py --small                  # 1 and 3 minutes
    python benchmarks/procedure_scale.py                          # 1, 5 and 30 minutes (hours on a 2-core CPU)
    python benchmarks/procedure_scale.py --minutes 30 --stages analysis   # one length, some stages

Videos are cached in ``--work`` (default: a folder in the temp dir) and reused by later runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import benchmark_parser, cpu_name, emit

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model"
FPS = 30.0
STAGES = (
    "realtime_720p",
    "import",
    "proxy",
    "analysis",
    "db_write",
    "timeline_load",
    "player_open",
    "timeline_fps",
    "ui_stall",
    "export_coco",
    "export_cvat",
)


def _proc_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process in MB (0, 0 when gone)."""
    rss = hwm = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return round(rss, 1), round(hwm, 1)


def _popen_wait4(
    args: list[str],
    env: dict | None = None,
    stdout_path: Path | None = None,
    poll=None,
    poll_every_s: float = 30.0,
) -> dict:
    """Run ``args`` and reap it with ``wait4``: wall and CPU seconds and the peak RSS of that process alone (the
    parent stays small: a child's high-water mark starts from its parent's size at fork). ``poll(pid, elapsed)``
    is called every ``poll_every_s`` while it runs."""
    import subprocess

    t0 = time.perf_counter()
    out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    try:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=ROOT)
        while poll is not None:
            try:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            time.sleep(min(poll_every_s, 5.0))
            if time.perf_counter() - t0 >= getattr(_popen_wait4, "_next", 0):
                poll(proc.pid, time.perf_counter() - t0)
                _popen_wait4._next = time.perf_counter() - t0 + poll_every_s  # type: ignore[attr-defined]
        else:
            pid, status, ru = os.wait4(proc.pid, 0)
        if poll is not None and not pid:
            pid, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdout_path:
            out.close()
    _popen_wait4._next = 0  # type: ignore[attr-defined]
    err.seek(0)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_mb": round(ru.ru_maxrss / 1024, 1),
        "rc": proc.returncode,
        "stderr": err.read()[-800:],
    }


def _predict_cmd(video: Path, preds: Path, threads: int | None) -> list[str]:
    """``endofm predict`` of ``video`` with the demo model into ``preds``."""
    cmd = [
        sys.executable,
        "-m",
        "core_model",
        "predict",
        str(video),
        "--model",
        str(DEMO),
        "--out",
        str(preds),
    ]
    return cmd + ["--threads", str(threads)] if threads else cmd


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def make_video(work: Path, minutes: float) -> tuple[Path, float]:
    path = work / f"procedure_{minutes:g}min_1080p.mp4"
    t0 = time.perf_counter()
    if not path.exists():
        code = (
            "from core_model.video.synthetic import write_long_video;"
            f"write_long_video({str(path)!r}, {int(round(minutes * 60 * FPS))}, size=(1080, 1920), fps={FPS},"
            " gop=250)"
        )
        res = _popen_wait4(py(code), {"PYTHONPATH": str(ROOT)})
        if res["rc"] != 0:
            raise SystemExit(f"cannot make {path}: {res['stderr']}")
    return path, time.perf_counter() - t0


def tile_predictions(src: Path, dest: Path, frames: int) -> int:
    """Repeat a predict output's frame events end to end (frame numbers shifted) up to ``frames``; returns the
    number of frame events written."""
    events, head, tail = [], [], []
    with open(src) as fh:
        for line in fh:
            ev = json.loads(line)
            if ev.get("event") == "frame":
                events.append(ev)
            elif not events:
                head.append(line)
            else:
                tail.append(line)
    period = max(e["frame"] for e in events) + 1
    n = 0
    with open(dest, "w") as out:
        out.writelines(head)
        for k in range(0, frames, period):
            for ev in events:
                if k + ev["frame"] < frames:
                    out.write(json.dumps({**ev, "frame": k + ev["frame"]}) + "\n")
                    n += 1
        out.writelines(tail)
    return n


def bench_length(
    minutes: float, work: Path, stages: set[str], threads: int | None, tile_from: Path | None = None
) -> dict:
    video, made_s = make_video(work, minutes)
    frames = int(round(minutes * 60 * FPS))
    secs = frames / FPS
    d = work / f"run_{minutes:g}min_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"  # never another run's
    d.mkdir()
    db = d / "library.sqlite3"
    env = {"ENDOREVIEW_DATA_DIR": str(d / "data"), "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    out: dict = {"minutes": minutes, "frames": frames, "dir": str(d)}
    emit(
        {
            "stage": "video",
            "minutes": minutes,
            "frames": frames,
            "mb": round(video.stat().st_size / 1e6, 1),
            "seconds": round(made_s, 2),
        }
    )

    def stage(name: str, res: dict, **extra) -> dict:
        line = {"stage": name, "minutes": minutes, **{k: v for k, v in res.items() if k != "last"}, **extra}
        if res.get("rc") == 0:
            line.pop("stderr", None)
        emit(line)
        out[name] = line
        return line

    video_id = None
    if "import" in stages or stages & {"db_write", "timeline_load", "ui_stall", "export_coco", "export_cvat"}:
        res = _popen_wait4(
            [sys.executable, "-m", "endoreview.interchange", "--db", str(db), "import", "videos", str(video)],
            env,
            d / "import.jsonl",
        )
        # what the app waits for: its import task (LibraryService.import_video, in a worker thread of the running
        # app, library open) into a second library, timed inside a child (the CLI's wall above adds the
        # interpreter's start-up, the modules' import and a new library's schema)
        code = (
            "import json, time\n"
            "from endoreview.services.app_settings import load_settings\n"
            "from endoreview.services.library import LibraryService\n"
            "from endoreview.services.projects import ProjectService\n"
            "from endoreview.store import Store\n"
            f"store = Store.open({str(d / 'app_import.sqlite3')!r})\n"
            "project = ProjectService(store, load_settings().default_label_set).default_project()\n"
            "t0 = time.perf_counter()\n"
            f"video, created = LibraryService(store).import_video(project.id, {str(video)!r})\n"
            "print(json.dumps({'app_import_s': time.perf_counter() - t0, 'frames': video.frame_count}))\n"
        )
        app = _popen_wait4(py(code), env, d / "app_import.out")
        try:
            last = json.loads((d / "app_import.out").read_text().strip().splitlines()[-1])
            app_s = round(float(last["app_import_s"]), 3)
        except (OSError, ValueError, KeyError, IndexError):
            app_s = None
        stage("import", res, app_import_s=app_s, app_import_rc=app["rc"])
        video_id = 1
    if "proxy" in stages:
        code = (
            "from endoreview.media.proxy import build_proxy; import sys;"
            f"i = build_proxy({str(video)!r}, {str(d / 'proxy.mp4')!r}); print(i)"
        )
        stage("proxy", _popen_wait4(py(code), env))
    preds = d / "preds.jsonl"
    if tile_from is not None and tile_from.exists():
        t0 = time.perf_counter()
        n = tile_predictions(tile_from, preds, frames)
        emit({"stage": "tile_predictions", "minutes": minutes, "frames": n, "from": str(tile_from),
              "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        out["predictions"] = "tiled"
    elif "analysis" in stages or stages & {
        "db_write",
        "timeline_load",
        "ui_stall",
        "export_coco",
        "export_cvat",
    }:
        cmd = _predict_cmd(video, preds, threads)
        samples: list[tuple[int, float]] = []

        def poll(pid: int, elapsed: float) -> None:
            done = 0
            try:
                with open(d / "analysis.out") as fh:
                    for line in fh:
                        if '"event": "progress"' in line or '"event":"progress"' in line:
                            done = int(json.loads(line)["done"])
            except (OSError, ValueError, KeyError):
                pass
            rss, hwm = _proc_mb(pid)
            if done and hwm:
                samples.append((done, hwm))
            emit(
                {
                    "stage": "analysis_progress",
                    "minutes": minutes,
                    "elapsed_s": round(elapsed, 1),
                    "frames_done": done,
                    "rss_mb": rss,
                    "hwm_mb": hwm,
                    "fps_so_far": round(done / elapsed, 2) if elapsed else None,
                }
            )

        res = _popen_wait4(cmd, env, d / "analysis.out", poll=poll, poll_every_s=60.0)
        n_done = 0
        if preds.exists():
            with open(preds) as fh:
                for line in fh:
                    if line.startswith('{"event":"frame"'):
                        n_done += 1
        fps = n_done / res["seconds"] if res["seconds"] else 0.0
        stage(
            "analysis",
            res,
            frames_done=n_done,
            fps=round(fps, 2),
            x_realtime=round(fps / FPS, 3),
            cpu_s_per_video_s=round(res["cpu_s"] / secs, 3),
            hwm_slope_mb_per_1000_frames=slope_mb_per_1000(samples),
        )
    if "db_write" in stages and video_id is not None and preds.exists():
        before = db.stat().st_size + sum(p.stat().st_size for p in d.glob("library.sqlite3-*"))
        code = f"""
import json, time
from endoreview.store import Store
from endoreview.services.predictions import PredictionRecorder
store = Store.open({str(db)!r})
rec = PredictionRecorder(store, {video_id}, None, params={{"bench": "procedure_scale"}}, batch_frames=256)
res = None
with open({str(preds)!r}) as fh:
    for line in fh:
        ev = json.loads(line)
        if ev.get("event") in ("frame", "video_done", "error", "cancelled"):
            res = rec.handle(ev) or res
print(json.dumps({{"run_id": rec.run.id, "frames": rec.frames, "labels": rec.labels}}))
store.close() if hasattr(store, "close") else None
"""
        res = _popen_wait4(py(code), env, d / "dbwrite.out")
        last = (d / "dbwrite.out").read_text().strip().splitlines()
        info = json.loads(last[-1]) if last else {}
        after = db.stat().st_size + sum(p.stat().st_size for p in d.glob("library.sqlite3-*"))
        grow = (after - before) / 1e6
        stage(
            "db_write",
            res,
            predictions=out.get("predictions", "analysed"),
            labels=info.get("labels"),
            db_mb=round(grow, 1),
            db_mb_per_hour=round(grow * 3600 / secs, 1),
        )
    if "timeline_load" in stages and video_id is not None:
        code = f"""
import json, time
from endoreview.store import Store
from endoreview.services.review_data import ReviewData
from endoreview.services.review_commands import read_snapshot
from endoreview.services.review_session import SUGGESTION_WINDOW
store = Store.open({str(db)!r})
data = ReviewData(store)
n = store.get_video({video_id}).frame_count
t = time.perf_counter()
run = data.latest_run({video_id})
summary = data.run_summary(run.id)                   # the class and detection lanes
labels = data.labels({video_id}, kinds=("segment", "video_class", "mask", "box"), suggestions=False)
snap = read_snapshot(store, {video_id}, None, (0, SUGGESTION_WINDOW))  # the review session's first window
load_s = time.perf_counter() - t
t = time.perf_counter()
tl = store.timeline_summary({video_id})              # label counts per frame (store API; the app does not read it)
label_summary_s = time.perf_counter() - t
t = time.perf_counter()
mid = read_snapshot(store, {video_id}, range(n // 2, n // 2 + SUGGESTION_WINDOW))
window_s = time.perf_counter() - t
t = time.perf_counter()
data.run_summary(data.latest_run({video_id}).id)     # what the library draws per video
library_s = time.perf_counter() - t
t = time.perf_counter()
geometry = data.run_geometry({video_id}, run.id)     # every mask and box at once (the old up-front load)
geometry_s = time.perf_counter() - t
print(json.dumps({{"load_s": round(load_s, 3), "window_s": round(window_s, 3), "library_s": round(library_s, 3),
                  "label_summary_s": round(label_summary_s, 3),
                  "frames_with_probs": int((summary.probs == summary.probs).any(axis=1).sum()),
                  "window_labels": sum(len(v) for v in snap.frames.values()),
                  "geometry_load_s": round(geometry_s, 3), "geometry_labels": len(geometry)}}))
"""
        res = _popen_wait4(py(code), env, d / "timeline.out")
        last = (d / "timeline.out").read_text().strip().splitlines()
        stage("timeline_load", res, **(json.loads(last[-1]) if last else {}))
    if "player_open" in stages:
        code = f"""
import json, time
t = time.perf_counter()
from core_model.video import VideoReader
r = VideoReader({str(video)!r})
a = r[0]; t1 = time.perf_counter() - t
b = r[len(r) // 2]
print(json.dumps({{"first_frame_s": round(t1, 3), "middle_frame_s": round(time.perf_counter() - t - t1, 3)}}))
"""
        res = _popen_wait4(py(code), env, d / "player.out")
        last = (d / "player.out").read_text().strip().splitlines()
        stage("player_open", res, **(json.loads(last[-1]) if last else {}))
    if "timeline_fps" in stages:
        code = f"""
import json, time, numpy as np
from PySide6.QtWidgets import QApplication
from endoreview.ui.timeline import TimelineWidget
from endoreview.ui.tracks import PredictionTrack, LabelTrack, Segment
app = QApplication([])
n = {frames}
rng = np.random.default_rng(0)
pred = PredictionTrack(n, classes=["normal", "abnormal"])
walk = np.clip(0.5 + np.cumsum(rng.normal(0, 0.02, n)), 0, 1).astype(np.float32)  # a smooth, busy signal
pred.probs = np.stack([1 - walk, walk], axis=1)
pred.det_score = np.clip(walk + rng.normal(0, 0.05, n), 0, 1).astype(np.float32)
labels = LabelTrack(n, segments=[Segment(a, a + 90, "polyp", "suggested") for a in range(0, n - 90, 600)])
import pyqtgraph as pg
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)  # as the app configures it (ui/app.py)
w = TimelineWidget(); w.resize(1600, 220); w.show()
paints = [0]
_paint = pg.GraphicsView.paintEvent
def counted(self, ev):
    paints[0] += 1
    return _paint(self, ev)
pg.GraphicsView.paintEvent = counted
t = time.perf_counter(); w.set_video(n, 30.0); w.set_tracks(pred, labels); w.grab(); app.processEvents()
first = time.perf_counter() - t
paints[0] = 0
steps, cpu = [], []
for k in range(60):  # zoom from the whole procedure to 10 s and pan across it
    span = max(300, int(n / (1.25 ** k)))
    a = int((n - span) * ((k * 7919) % 60) / 59)
    # one repaint a step, as the app does on a zoom or pan (grab() would paint it a second time)
    t, c = time.perf_counter(), time.process_time(); w.setXRange(a, a + span, padding=0); app.processEvents()
    steps.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
print(json.dumps({{"first_draw_s": round(first, 3), "fps": round(len(steps) / sum(steps), 1),
                  "worst_step_ms": round(1000 * max(steps), 1), "median_step_ms": round(1000 * float(np.median(steps)), 1),
                  "median_step_cpu_ms": round(1000 * float(np.median(cpu)), 1), "paints": paints[0]}}))
"""
        res = _popen_wait4(py(code), {**env, "QT_QPA_PLATFORM": "offscreen"}, d / "timeline_fps.out")
        last = (d / "timeline_fps.out").read_text().strip().splitlines()
        stage("timeline_fps", res, **(json.loads(last[-1]) if last else {}))
    if "ui_stall" in stages and video_id is not None and db.exists():
        # the real app on this video with its predictions: first frame, and the GUI thread's longest stalls while
        # idle, scrubbing, zooming the timeline and playing (benchmarks/ui_stall.py, on a copy of the library)
        import shutil

        lib = d / "ui_stall.sqlite3"
        shutil.copyfile(db, lib)
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "ui_stall.py"),
            "--db",
            str(lib),
            "--video-id",
            str(video_id),
        ]
        res = _popen_wait4(cmd, {"QT_QPA_PLATFORM": "offscreen"}, d / "ui_stall.out")
        lines = [ln for ln in (d / "ui_stall.out").read_text().splitlines() if '"summary"' in ln]
        got = json.loads(lines[-1]) if lines else {}
        stage("ui_stall", res, **{k: v for k, v in got.items() if k.endswith(("_ms", "_s", "_per_s"))})
        lib.unlink(missing_ok=True)
    for fmt, name in (("coco", "export_coco"), ("cvat-video", "export_cvat")):
        if name in stages and video_id is not None:
            cmd = [sys.executable, "-m", "endoreview.interchange", "--db", str(db), "export", fmt]
            cmd += [str(d / f"export_{fmt}"), "--run-id", "1"]
            load_before = os.getloadavg()[0]
            res = _popen_wait4(cmd, env)  # cpu_s and peak_mb include the CVAT export's mask workers
            size = sum(p.stat().st_size for p in (d / f"export_{fmt}").rglob("*") if p.is_file())
            # the wall time depends on what else runs: the load average before and after says how busy it was
            stage(name, res, out_mb=round(size / 1e6, 1), load_before=round(load_before, 2),
                  load_after=round(os.getloadavg()[0], 2))  # fmt: skip
    return out


def bench_realtime_720p(work: Path, threads: int | None) -> dict:
    """Issue 20's bar: ``endofm predict`` on a 10-second 1280x720 H.264 video with the demo model (every frame)."""
    path = work / "clip_10s_720p.mp4"
    if not path.exists():
        code = (
            "from core_model.video.synthetic import write_texture_video;"
            f"write_texture_video({str(path)!r}, 300, size=(720, 1280), fps=30.0, gop=250)"
        )
        _popen_wait4(py(code), {"PYTHONPATH": str(ROOT)})
    preds = work / "clip_10s_720p.jsonl"
    cmd = _predict_cmd(path, preds, threads)
    load_before = os.getloadavg()[0]
    res = _popen_wait4(cmd, {"PYTHONPATH": str(ROOT)})
    done = {}
    with open(preds) as fh:
        for line in fh:
            if '"event":"video_done"' in line:
                done = json.loads(line)
    line = {
        "stage": "realtime_720p",
        **{k: v for k, v in res.items() if k != "stderr" or res["rc"]},
        "video_s": 10.0,
        "predict_s": done.get("seconds"),
        "x_realtime_predict": round(10.0 / done["seconds"], 3) if done.get("seconds") else None,
        "x_realtime_process": round(10.0 / res["seconds"], 3) if res["seconds"] else None,
        "cpu_s_per_video_s": round(res["cpu_s"] / 10.0, 3),
        "startup_s": round(res["seconds"] - done["seconds"], 2) if done.get("seconds") else None,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    emit(line)
    return line


def slope_mb_per_1000(points: list[tuple[int, float]]) -> float | None:
    if len(points) < 2:
        return None
    xs = [p[0] / 1000 for p in points]
    ys = [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den, 3) if den else None


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "1 and 3 minutes")
    ap.add_argument("--minutes", type=float, action="append", help="video lengths (repeatable)")
    ap.add_argument(
        "--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES)
    )
    ap.add_argument("--work", default=None, help="folder for videos (kept) and runs")
    ap.add_argument("--threads", type=int, default=None, help="endofm predict --threads")
    ap.add_argument(
        "--realtime-runs",
        type=int,
        default=1,
        help="run realtime_720p this many times; the summary quotes the medians (a shared machine is noisy)",
    )
    ap.add_argument(
        "--tile-predictions",
        action="store_true",
        help="analyse the first length only and repeat its predictions to the longer lengths",
    )
    ap.add_argument(
        "--tile-from",
        default=None,
        help="an earlier run's preds.jsonl (endofm predict output) to repeat to every length instead of analysing",
    )
    args = ap.parse_args(argv)
    lengths = args.minutes or ([1.0, 3.0] if args.small else [1.0, 5.0, 30.0])
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if stages - set(STAGES):
        ap.error(f"unknown stages {sorted(stages - set(STAGES))}")
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / "endoreview-procedure-scale"
    work.mkdir(parents=True, exist_ok=True)
    rt: dict = {}
    if "realtime_720p" in stages:
        runs = [bench_realtime_720p(work, args.threads) for _ in range(max(1, args.realtime_runs))]
        rt = {
            **runs[0],
            **{
                k: statistics.median(r[k] for r in runs)
                for k in ("x_realtime_predict", "x_realtime_process", "peak_mb")
                if all(r.get(k) is not None for r in runs)
            },
            "runs": len(runs),
        }
    results = []
    tile_from: Path | None = Path(args.tile_from) if args.tile_from else None
    if tile_from is not None and not tile_from.is_file():
        ap.error(f"--tile-from {tile_from}: no such file")
    for m in lengths:
        r = bench_length(m, work, stages, args.threads, tile_from)
        results.append(r)
        if args.tile_predictions and tile_from is None:
            tile_from = Path(r["dir"]) / "preds.jsonl"
    peaks = [(r["frames"], r["analysis"]["peak_mb"]) for r in results if "analysis" in r]
    longest = results[-1]
    summary = {
        "event": "summary",
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "lengths_min": lengths,
        "realtime_720p_x": rt.get("x_realtime_predict"),
        "realtime_720p_x_process": rt.get("x_realtime_process"),
        "realtime_720p_runs": rt.get("runs"),
        "analysis_x_realtime": [r.get("analysis", {}).get("x_realtime") for r in results],
        "analysis_cpu_s_per_video_s": [r.get("analysis", {}).get("cpu_s_per_video_s") for r in results],
        "analysis_peak_mb": [p for _, p in peaks],
        "analysis_mem_slope_mb_per_1000_frames": slope_mb_per_1000(peaks),
        "import_s": longest.get("import", {}).get("seconds"),
        "import_app_s": longest.get("import", {}).get("app_import_s"),
        "proxy_s": longest.get("proxy", {}).get("seconds"),
        "db_mb_per_hour": longest.get("db_write", {}).get("db_mb_per_hour"),
        "timeline_load_s": longest.get("timeline_load", {}).get("load_s"),
        "window_s": longest.get("timeline_load", {}).get("window_s"),
        "library_s": longest.get("timeline_load", {}).get("library_s"),
        "geometry_load_s": longest.get("timeline_load", {}).get("geometry_load_s"),
        "predictions": longest.get("predictions", "analysed"),
        "timeline_fps": longest.get("timeline_fps", {}).get("fps"),
        "timeline_worst_step_ms": longest.get("timeline_fps", {}).get("worst_step_ms"),
        "ui_stall_max_ms": max(
            (
                v
                for k, v in longest.get("ui_stall", {}).items()
                if k.endswith("_stall_max_ms") and v is not None
            ),
            default=None,
        ),
        "ui_first_frame_s": longest.get("ui_stall", {}).get("open_first_frame_s"),
        "ui_timeline_steps_per_s": longest.get("ui_stall", {}).get("timeline_steps_per_s"),
        "export_coco_s": longest.get("export_coco", {}).get("seconds"),
        "export_cvat_s": longest.get("export_cvat", {}).get("seconds"),
        "peak_mb_by_stage": {
            k: max((r.get(k, {}).get("peak_mb") or 0) for r in [*results, {"realtime_720p": rt}])
            for k in STAGES
            if k in stages
        },
    }
    emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
