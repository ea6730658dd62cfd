"""How long a review action takes to be saved and on screen while a prediction job writes to the same database
(issue 23: a review action on screen in <= 50 ms and durable in <= 100 ms p99 while a job writes).

The real main window (offscreen Qt, the app's composition root, a SQLite library as the app opens it) shows a
640x480 video analysed with a polyp mask and box suggestion on every frame. Meanwhile a separate process commits
predicted frames for another video of the same library back to back, as a predict job that never pauses for model
compute does (``benchmarks/concurrent_saves.py``'s job: batches of 256 frames, each with a mask). A scripted
reviewer goes frame by frame (→), and on each frame in turn presses A (accept the suggestions), R (reject them) or
draws one brush stroke, waiting for each to be on screen before the next. Per action:

* ``durable_ms``: from the key press (the mouse release for a stroke) to the end of the action's transaction (the
  store commits with ``synchronous=FULL``; the editor then reads back what was saved);
* ``screen_ms``: from the key press to the first paint of the correction layer showing the result (A and R are
  drawn before they are saved; a brush stroke is drawn while it is made and stays drawn from its release);
* ``read_back_ms``: from the commit to the saved labels arriving on the GUI thread (they replace what was shown;
  the view repaints only if they differ).

The same reviewer first works without the job (``alone``), then with it (``with_job``). One JSON object per line;
the last is the summary with p50 / p99 / max of both figures in both phases.

    python benchmarks/review_latency.py            # 90 actions a phase
    python benchmarks/review_latency.py --small    # 30 actions a phase
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_parser, cpu_name, emit  # noqa: E402
from concurrent_saves import pct  # noqa: E402

W, H = 640, 480


def polyp(i: int) -> tuple[np.ndarray, list[float]]:
    """A disc moving slowly across the frame: the suggested mask and its box on frame ``i``."""
    cy, cx, r = 200 + (i % 40), 260 + (i * 3) % 120, 70
    yy, xx = np.ogrid[:H, :W]
    m = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
    return m, [cx - r, cy - r, cx + r, cy + r]


def make_video(path: Path, n: int) -> Path:
    from core_model.video import write_video

    def frames():
        for i in range(n):
            m, _ = polyp(i)
            f = np.full((H, W, 3), 60, np.uint8)
            f[m > 0] = (190, 90, 80)
            yield f

    return write_video(path, frames(), fps=25.0, gop=25, crf=23)


def predictions(n: int) -> list[dict]:
    from core_model.contract import rle_encode

    out = []
    for i in range(n):
        m, box = polyp(i)
        out.append(
            {
                "event": "frame",
                "frame": i,
                "probs": {"normal": 0.1, "abnormal": 0.9},
                "masks": [{"label": "polyp", "score": 0.9, "rle": rle_encode(m)}],
                "boxes": [{"label": "polyp", "score": 0.9, "bbox": box}],
            }
        )
    return out


class Timings:
    """When each action's transaction ended and when the correction layer was painted (GUI-thread clocks)."""

    def __init__(self, session) -> None:
        from endoreview.services import review_commands

        self.commits: list[float] = []
        self.paints: list[float] = []
        real = review_commands.read_snapshot

        def read_snapshot(*a, **k):  # called by the writer right after the action's transaction committed
            self.commits.append(time.perf_counter())
            return real(*a, **k)

        review_commands.read_snapshot = read_snapshot
        self.delivered: list[float] = []
        # told first (before the editor, which may paint at once): when the change reached the GUI thread
        session.ctl.session._listeners.insert(
            0, lambda kind, _p: kind == "labels" and self.delivered.append(time.perf_counter())
        )
        layer = session.ctl.layer
        paint = layer.paint

        def painted(*a, **k):
            paint(*a, **k)
            self.paints.append(time.perf_counter())

        layer.paint = painted

    def after(self, xs: list[float], t0: float) -> float | None:
        return next((t for t in xs if t >= t0), None)


def stroke(session, f: int):
    """One brush stroke across the suggested polyp of frame ``f``: press and four moves; returns the release."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent

    _, (x0, y0, x1, y1) = polyp(f)
    view = session.win.player_widget.view
    vp = view.viewport()
    pts = [(x0 + (x1 - x0) * k / 5, (y0 + y1) / 2) for k in range(1, 5)]

    def send(kind, x, y, button, buttons) -> None:
        pos = QPointF(view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y))))
        glob = QPointF(vp.mapToGlobal(pos.toPoint()))
        session.app.sendEvent(
            vp, QMouseEvent(kind, pos, glob, button, buttons, Qt.KeyboardModifier.NoModifier)
        )

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QEvent.Type.MouseButtonPress, *pts[0], left, left)
    for x, y in pts[1:]:
        time.sleep(0.02)  # a real mouse reports at 50-100 Hz
        send(QEvent.Type.MouseMove, x, y, none, left)
        session.app.processEvents()
    return lambda: send(QEvent.Type.MouseButtonRelease, *pts[-1], left, none)


def phase(session, timings: Timings, frames: range, name: str) -> dict:
    from PySide6.QtCore import Qt

    read_back: list[float] = []  # from the commit to the saved labels arriving on the GUI thread
    durable: dict[str, list[float]] = {"accept": [], "reject": [], "stroke": []}
    screen: dict[str, list[float]] = {"accept": [], "reject": [], "stroke": []}
    for k, f in enumerate(frames):
        session.win.player.seek(f)
        session.spin(
            lambda f=f: (
                session.win.player.current == f
                # the tools act on the frame on screen: acting before it is shown reviewed the previous frame
                and (session.win.player.shown or (None,))[0] == f
                and session.ctl.session.snapshot_current
                and session.suggested_mask(f) is not None
            )
        )
        action = ("accept", "reject", "stroke")[k % 3]
        session.ctl.set_tool("brush" if action == "stroke" else "navigate")
        release = stroke(session, f) if action == "stroke" else None
        t0 = time.perf_counter()
        if release is not None:
            release()
        else:
            session.key(Qt.Key.Key_A if action == "accept" else Qt.Key.Key_R)
        session.settle()  # the writer has saved and delivered the action
        session.spin(lambda t0=t0: timings.after(timings.paints, t0) is not None)
        tc = timings.after(timings.commits, t0)
        td = timings.after(timings.delivered, tc)
        if td is not None:
            read_back.append(1000 * (td - tc))
        durable[action].append(1000 * (tc - t0))
        # on screen: the first paint after the editor was told of the change (A / R show the new state before it
        # is saved); a stroke is drawn as it is made, and stays drawn from its release
        shown = t0 if action == "stroke" else timings.after(timings.delivered, t0)
        screen[action].append(1000 * (timings.after(timings.paints, shown) - t0))
    every_d = [x for v in durable.values() for x in v]
    every_s = [x for v in screen.values() for x in v]
    out = {
        "phase": name,
        "actions": len(every_d),
        "durable_ms_p50": round(pct(every_d, 50), 1),
        "durable_ms_p99": round(pct(every_d, 99), 1),
        "durable_ms_max": round(max(every_d), 1),
        "screen_ms_p50": round(pct(every_s, 50), 1),
        "screen_ms_p99": round(pct(every_s, 99), 1),
        "screen_ms_max": round(max(every_s), 1),
        **{f"{a}_screen_ms_p50": round(pct(v, 50), 1) for a, v in screen.items()},
        "read_back_ms_p50": round(pct(read_back, 50), 1),
        "read_back_ms_p99": round(pct(read_back, 99), 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    emit(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "30 actions a phase instead of 90")
    ap.add_argument("--actions", type=int, default=None)
    args = ap.parse_args(argv)
    n_actions = args.actions or (30 if args.small else 90)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from review_workflow import Session

    with tempfile.TemporaryDirectory(prefix="review-latency-") as td:
        work = Path(td)
        os.environ["ENDOREVIEW_DATA_DIR"] = str(work / "data")
        n = 2 * n_actions + 2
        video = make_video(work / "procedure.mp4", n)
        db = work / "library.sqlite3"
        s = Session(video, db, predictions(n))
        be = s.win.backend
        # the video the job analyses: the next procedure in the queue (an hour at 30 fps, as a row)
        other_id = s._thread(
            lambda: be.store.add_video(
                be.project.id, path=str(work / "next_in_queue.mp4"), path_is_relative=False,
                content_hash="p1:next-in-queue", size_bytes=1, frame_count=108_000, fps=30.0, width=W, height=H,
                codec="h264",
            ).id
        )  # fmt: skip
        timings = Timings(s)
        t0 = time.perf_counter()
        alone = phase(s, timings, range(1, 1 + n_actions), "alone")
        job_s = 2 * (time.perf_counter() - t0) + 5  # writing all through the next phase
        go = work / "go"
        job = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("concurrent_saves.py")), "--role", "job",
             "--db", str(db), "--video", str(other_id), "--go", str(go), "--seconds", str(round(job_s, 1))],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        time.sleep(3.0)  # the job process imports and opens the database
        go.touch()
        time.sleep(0.5)
        try:
            if job.poll() is not None:
                raise SystemExit(f"the job process ended early: {job.stdout.read()}")
            with_job = phase(s, timings, range(1 + n_actions, 1 + 2 * n_actions), "with_job")
            if job.poll() is not None:
                raise SystemExit("the job stopped writing before the phase ended: the figures are not valid")
            out, _ = job.communicate(timeout=job_s + 60)
            emit(json.loads(out.strip().splitlines()[-1]))  # what the job wrote meanwhile (and after)
        finally:
            if job.poll() is None:
                job.kill()
        s.close()
    emit(
        {
            "event": "summary",
            "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, no GPU used (offscreen Qt)",
            "actions_per_phase": n_actions,
            **{f"alone_{k}": v for k, v in alone.items() if k.startswith(("durable", "screen"))},
            **{f"with_job_{k}": v for k, v in with_job.items() if k.startswith(("durable", "screen"))},
            "targets": {"screen_ms": 50, "durable_ms_p99": 100},
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
