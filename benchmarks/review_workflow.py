"""A measured review workflow: correcting a model's suggestions vs labelling the same video from scratch.

On a phantom video with exact ground truth, a stand-in model suggests a mask and a box on every polyp frame;
some are wrong on purpose (shifted away from the polyp, ``--wrong``) and a few normal frames get a false positive.
A scripted reviewer who knows the truth then goes through the video frame by frame in the real app (offscreen
main window, real store, the correction tools' keys and mouse events):

* ``review``: A accepts a correct suggestion; a wrong one is rejected (R) and fixed — C copies the previous
  frame's mask when that matches this frame (IoU ≥ 0.7), otherwise the outline is clicked with the polygon tool;
  false positives are rejected (R); → goes to the next frame.
* ``scratch``: the same reviewer with the same tools and no suggestions: C when the previous mask fits, otherwise
  the polygon.
* ``scratch_propagate``: from scratch, but each drawn mask is propagated forward (Ctrl+→); a propagated mask
  that fits is kept as is, a bad one is cleared (Shift+Del) and redrawn.

Reported per mode: key presses, mouse clicks, wall time (until every edit is saved), and the labels' mean IoU with
the truth; the summary gives the ratios. One JSON object per line, the last the summary.

    python benchmarks/review_workflow.py --small      # about a minute on a laptop CPU
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import benchmark_parser, cpu_name, emit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOOD_IOU = 0.7
# Keystroke-level model (Card, Moran & Newell 1980): seconds per keystroke, point + click, mental preparation
# (one decision per frame), homing between keyboard and mouse (twice per polygon).
KLM_K, KLM_CLICK, KLM_M, KLM_H = 0.28, 1.1 + 0.2, 1.35, 0.4


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def make_phantom(out: Path, frames: int, size: int) -> tuple[Path, object]:
    from core_model.phantom import generate_video, load_ground_truth, render_video

    for seed in range(100):
        _, gt = render_video(seed, n_frames=frames, size=min(size, 96))
        frac = float(gt.frame_has_polyp.mean())
        if 0.4 <= frac <= 0.9:
            break
    path = generate_video(out, "workflow", seed, n_frames=frames, size=size)
    return path, load_ground_truth(path.with_suffix(".json"))


def model_events(gt, wrong: float, seed: int = 0):
    """A stand-in model: the truth, with a fraction of polyp frames wrong and a few false positives."""
    from core_model.contract import rle_encode
    from endoreview.services.editing import mask_box

    rng = np.random.default_rng(seed)
    n, h, w = gt.num_frames, gt.height, gt.width
    has = gt.frame_has_polyp
    edge = np.zeros(n, bool)  # the model hesitates for a few frames where a polyp comes into / leaves view
    for k in np.flatnonzero(has[1:] != has[:-1]):
        edge[max(0, k - 2) : k + 3] = True
    for f in range(n):
        truth = gt.instance_mask(f) > 0
        ev: dict = {"event": "frame", "frame": f}
        if truth.any():
            m = truth
            if rng.random() < wrong:
                m = np.roll(truth, (h // 5, w // 5), axis=(0, 1))
            p = 0.92
        elif rng.random() < 0.08:
            m = np.zeros((h, w), bool)
            cy, cx = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4)
            m[cy - 10 : cy + 10, cx - 10 : cx + 10] = True
            p = 0.6
        else:
            m, p = None, 0.08
        if edge[f]:
            p = 0.45 + 0.1 * rng.random()
        ev["probs"] = {"normal": 1 - p, "abnormal": p}
        if m is not None and m.any():
            ev["masks"] = [{"label": "polyp", "score": p, "rle": rle_encode(m)}]
            ev["boxes"] = [{"label": "polyp", "score": p, "bbox": list(mask_box(m))}]
        yield ev
    yield {"event": "video_done", "frames": n}


def outlines(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """The polygons a reviewer would click around each polyp of ``mask`` (at most 16 points each)."""
    import cv2

    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    for c in sorted(cs, key=cv2.contourArea, reverse=True):
        if cv2.contourArea(c) < 12:
            continue
        eps = 0.01 * cv2.arcLength(c, True)
        pts = cv2.approxPolyDP(c, eps, True)[:, 0, :]
        while len(pts) > 16:
            eps *= 1.3
            pts = cv2.approxPolyDP(c, eps, True)[:, 0, :]
        if len(pts) >= 3:
            out.append([(float(x) + 0.5, float(y) + 0.5) for x, y in pts])
    return out


class Session:
    """The real main window on a fresh database, driven like a reviewer would."""

    def __init__(self, video: Path, db: Path, predictions: list[dict] | None) -> None:
        from PySide6.QtCore import QPointF  # noqa: F401 - Qt loaded before the window

        from endoreview.ui.app import apply_theme, compose, ensure_app
        from endoreview.ui.main_window import MainWindow

        self.app = ensure_app()
        apply_theme(self.app)
        self.win = MainWindow(compose(str(db), "scripted", cache_bytes=64 * 1024 * 1024))
        self.win.resize(1366, 768)
        self.win.show()
        self.win.start()
        self.spin(lambda: self.win.library_ctl.ready)
        be = self.win.backend
        vid = self._thread(lambda: be.library.import_video(be.project.id, str(video))[0].id)
        if predictions is not None:
            from endoreview.services.predictions import PredictionRecorder

            self._thread(lambda: PredictionRecorder(be.store, vid, None).record(predictions))
        self.ctl = self.win.editing()  # built once (the window builds it after its first paint)
        self.win.open_video(vid)
        self.spin(
            lambda: (
                self.win.player.shown == (0, True) and self.ctl.loaded and self.ctl.session.snapshot_current
            )
        )
        self.keys = self.clicks = 0

    def spin(self, cond, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
            self.app.processEvents()
            time.sleep(0.002)

    def _thread(self, fn):
        out: list = []
        t = threading.Thread(target=lambda: out.append(fn()))
        t.start()
        self.spin(lambda: not t.is_alive())
        return out[0]

    def key(self, k, mod=None) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        view = self.win.player_widget.view
        view.setFocus()
        QTest.keyClick(view, k, mod or Qt.KeyboardModifier.NoModifier)
        self.keys += 1
        self.settle()

    def click(self, x: float, y: float) -> None:
        from PySide6.QtCore import QEvent, QPointF, Qt
        from PySide6.QtGui import QMouseEvent

        view = self.win.player_widget.view
        pos = QPointF(view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y))))
        vp = view.viewport()
        for kind, buttons in ((QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):  # fmt: skip
            ev = QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), Qt.MouseButton.LeftButton, buttons,
                             Qt.KeyboardModifier.NoModifier)  # fmt: skip
            self.app.sendEvent(vp, ev)
        self.clicks += 1
        self.app.processEvents()

    def settle(self) -> None:
        self.spin(lambda: self.ctl.writer.busy == 0)

    def frame_mask(self, f: int) -> np.ndarray | None:
        """The reviewer's mask on frame ``f`` as saved (what they see drawn)."""
        from core_model.contract import rle_decode
        from endoreview.services.editing import HUMAN_STATES

        labs = [x for x in self.ctl.session.frames.get(f, []) if x.kind == "mask" and x.state in HUMAN_STATES]
        return rle_decode(labs[0].rle) if labs else None

    def suggested_mask(self, f: int) -> np.ndarray | None:
        from core_model.contract import rle_decode

        labs = [x for x in self.ctl.session.frames.get(f, []) if x.kind == "mask" and x.state == "suggested"]
        return rle_decode(labs[0].rle) if labs else None

    def polygon(self, mask: np.ndarray) -> None:
        from PySide6.QtCore import Qt

        self.key(Qt.Key.Key_P)
        for pts in outlines(mask):
            for x, y in pts:
                self.click(x, y)
            self.click(*pts[0])  # clicking the first point again fills it
            self.settle()
        self.ctl.hover = None  # the mouse leaves the frame
        self.settle()

    def close(self) -> None:
        end = time.monotonic() + 0.7  # let the timeline's throttled reload run before the window goes
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)
        self.win.close()
        self.win.deleteLater()
        self.app.processEvents()


def run(mode: str, video: Path, gt, events: list[dict] | None, work: Path) -> dict:
    from PySide6.QtCore import Qt

    s = Session(video, work / f"{mode}.sqlite3", events if mode == "review" else None)
    n = gt.num_frames
    t0 = time.perf_counter()
    accepted = fixed_copy = fixed_poly = rejected_fp = kept = 0
    for f in range(n):
        truth = gt.instance_mask(f) > 0
        sug = s.suggested_mask(f)
        own = s.frame_mask(f)  # e.g. propagated there earlier
        if truth.any() and own is not None and iou(own, truth) >= GOOD_IOU:
            kept += 1  # a good propagated mask: nothing to do
        elif own is not None:
            s.key(Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)  # clear a bad one first
        if truth.any() and not (own is not None and iou(own, truth) >= GOOD_IOU):
            if sug is not None and iou(sug, truth) >= GOOD_IOU:
                s.key(Qt.Key.Key_A)
                accepted += 1
            else:
                if sug is not None:
                    s.key(Qt.Key.Key_R)
                prev = s.frame_mask(f - 1) if f > 0 else None
                if prev is not None and iou(prev, truth) >= GOOD_IOU:
                    s.key(Qt.Key.Key_C)
                    fixed_copy += 1
                else:
                    s.polygon(truth)
                    fixed_poly += 1
                nxt = f + 1 < n and gt.frame_has_polyp[f + 1]
                if mode == "scratch_propagate" and nxt and s.frame_mask(f + 1) is None:
                    s.key(Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)  # carry it forward
        elif not truth.any() and sug is not None:
            s.key(Qt.Key.Key_R)
            rejected_fp += 1
        if f < n - 1:
            s.key(Qt.Key.Key_Right)
            s.spin(lambda f=f: s.win.player.current == f + 1)
    s.settle()
    wall = time.perf_counter() - t0
    ious = [iou(s.frame_mask(f) if s.frame_mask(f) is not None else np.zeros(1, bool), gt.instance_mask(f) > 0)
            for f in range(n) if gt.frame_has_polyp[f]]  # fmt: skip
    klm = KLM_K * s.keys + KLM_CLICK * s.clicks + KLM_M * n + KLM_H * 2 * fixed_poly
    left_fp = sum(1 for f in range(n) if not gt.frame_has_polyp[f] and s.frame_mask(f) is not None)
    out = {
        "phase": mode, "frames": n, "polyp_frames": int(gt.frame_has_polyp.sum()), "keys": s.keys,
        "clicks": s.clicks, "actions": s.keys + s.clicks, "wall_s": round(wall, 2),
        "klm_estimate_s": round(klm, 1),
        "mean_iou": round(float(np.mean(ious)), 3) if ious else None, "false_positive_frames_left": left_fp,
        "accepted": accepted, "fixed_by_copy": fixed_copy, "fixed_by_polygon": fixed_poly,
        "rejected_false_positives": rejected_fp, "kept_propagated": kept,
    }  # fmt: skip
    s.close()
    return out


def screens(out: Path, size: str, work: Path) -> None:
    """Screenshots of each correction tool in use (run under Xvfb: ``xvfb-run -s "-screen 0 1366x768x24"``).

    Without a window manager the window never becomes active, so shortcuts do not fire: the tools are invoked
    through the controller the keys call (the keys themselves are covered by ``tests/ui/test_editing.py``)."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent

    w, h = (int(v) for v in size.split("x"))
    video, gt = make_phantom(work, 60, 256)
    s = Session(video, work / "screens.sqlite3", list(model_events(gt, 0.3, seed=3)))
    s.win.setGeometry(0, 0, w, h)
    s.win.showMaximized()
    ctl, win = s.ctl, s.win
    polyp = np.flatnonzero(gt.frame_has_polyp)
    mid = int(polyp[len(polyp) // 3])
    out.mkdir(parents=True, exist_ok=True)

    def wait(sec: float = 0.6) -> None:
        end = time.monotonic() + sec
        while time.monotonic() < end:
            s.app.processEvents()
            time.sleep(0.01)

    def save(name: str, widget=None) -> None:
        wait()
        path = out / f"edit_{name}-{w}x{h}.png"
        (widget or win).grab().save(str(path))
        print(path, flush=True)

    def go(f: int) -> None:
        win.player.seek(f)
        s.spin(lambda: win.player.shown == (f, True))
        s.settle()

    def mouse(kind, x: float, y: float, buttons) -> None:
        view = win.player_widget.view
        pos = QPointF(view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y))))
        ev = QMouseEvent(kind, pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), Qt.MouseButton.LeftButton,
                         buttons, Qt.KeyboardModifier.NoModifier)  # fmt: skip
        s.app.sendEvent(view.viewport(), ev)
        s.app.processEvents()

    truth = gt.instance_mask(mid) > 0
    ys, xs = np.nonzero(truth)
    cx, cy = float(xs.mean()), float(ys.mean())
    go(mid)
    mouse(QEvent.Type.MouseMove, cx + 40, cy, Qt.MouseButton.NoButton)
    save("review")  # suggestions of the model on the frame, tool bar, timeline
    ctl.accept()
    s.settle()
    ctl.set_tool("brush")
    mouse(QEvent.Type.MouseButtonPress, cx - 20, cy + 20, Qt.MouseButton.LeftButton)
    for k in range(12):
        mouse(QEvent.Type.MouseMove, cx - 20 + 4 * k, cy + 20 + 2 * k, Qt.MouseButton.LeftButton)
    save("brush")  # mid-stroke, brush outline under the cursor
    mouse(QEvent.Type.MouseButtonRelease, cx + 28, cy + 44, Qt.MouseButton.NoButton)
    s.settle()
    ctl.propagate(True)
    s.settle()
    go(mid + 2)
    save("propagated")  # dashed outline = propagated; cyan ticks on the timeline
    go(mid)
    ctl.set_tool("polygon")
    for a in np.linspace(0, 1.4 * np.pi, 7):
        s.click(cx + 30 * np.cos(a), cy + 30 * np.sin(a))
    mouse(QEvent.Type.MouseMove, cx + 30, cy - 10, Qt.MouseButton.NoButton)
    save("polygon")
    ctl.set_tool("navigate")
    ctl.tools.cancel()
    ctl.set_tool("box")
    ctl.session.select_box(next((x for x in ctl.session.frames.get(mid, []) if x.kind == "box"), None))
    save("box")
    go(max(0, int(polyp[0]) - 3))
    ctl.session.set_mark("in", ctl.frame)
    go(min(gt.num_frames - 1, int(polyp[0]) + 12))
    ctl.session.set_mark("out", ctl.frame)
    ctl.session.class_key(0)
    s.settle()
    go(int(polyp[0]) + 20)
    ctl.session.set_mark("in", ctl.frame)
    save("segments")  # segment region with draggable edges, In mark
    ctl.set_blind(True)
    save("blind")
    ctl.set_blind(False)
    ctl.queue_dock.show()
    ctl.queue.rebuild()
    wait(1.5)
    save("queue")
    ctl.queue_dock.hide()
    win.show_help()
    wait(0.5)
    save("shortcuts", win._help)
    win._help.close()
    s.close()


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "40 frames at 192 px, one repeat (about a minute)")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--wrong", type=float, default=0.2, help="fraction of polyp frames the model gets wrong")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--screens", metavar="DIR", help="instead: save screenshots of each tool to DIR (under Xvfb)"
    )
    ap.add_argument("--screen-size", default="1366x768")
    args = ap.parse_args(argv)
    if args.screens:
        with tempfile.TemporaryDirectory(prefix="er-screens-") as tmp:
            os.environ["ENDOREVIEW_DATA_DIR"] = str(Path(tmp) / "data")
            import pyqtgraph as pg

            pg.setConfigOptions(imageAxisOrder="row-major")
            screens(Path(args.screens), args.screen_size, Path(tmp))
        return 0
    if args.small:
        args.frames, args.size, args.repeats = 40, 192, 1
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="er-workflow-") as tmp:
        work = Path(tmp)
        os.environ["ENDOREVIEW_DATA_DIR"] = str(work / "data")
        video, gt = make_phantom(work, args.frames, args.size)
        events = list(model_events(gt, args.wrong))
        import pyqtgraph as pg

        pg.setConfigOptions(imageAxisOrder="row-major")
        results: dict[str, list[dict]] = {"review": [], "scratch": [], "scratch_propagate": []}
        for rep in range(args.repeats):
            for mode in ("review", "scratch", "scratch_propagate"):
                r = run(mode, video, gt, events, work / f"r{rep}")
                r["repeat"] = rep
                emit(r)
                results[mode].append(r)

    def med(mode: str, k: str) -> float:
        return float(statistics.median(r[k] for r in results[mode]))

    emit({
        "phase": "summary", "machine": cpu_name(), "frames": args.frames, "size": args.size, "wrong": args.wrong,
        "repeats": args.repeats,
        "review_actions": med("review", "actions"), "scratch_actions": med("scratch", "actions"),
        "review_wall_s": med("review", "wall_s"), "scratch_wall_s": med("scratch", "wall_s"),
        "actions_ratio_scratch_over_review": round(med("scratch", "actions") / max(1.0, med("review", "actions")), 2),
        "wall_ratio_scratch_over_review": round(med("scratch", "wall_s") / max(1e-6, med("review", "wall_s")), 2),
        "scratch_propagate_actions": med("scratch_propagate", "actions"),
        "scratch_propagate_klm_s": med("scratch_propagate", "klm_estimate_s"),
        "scratch_propagate_mean_iou": med("scratch_propagate", "mean_iou"),
        "review_klm_s": med("review", "klm_estimate_s"), "scratch_klm_s": med("scratch", "klm_estimate_s"),
        "klm_ratio_scratch_over_review": round(med("scratch", "klm_estimate_s") / max(1e-6, med("review", "klm_estimate_s")), 2),
        "review_mean_iou": med("review", "mean_iou"), "scratch_mean_iou": med("scratch", "mean_iou"),
        "note": "wall_s is the app's own time (every edit saved, every frame presented) for a reviewer with no "
        "thinking time; klm_s adds a keystroke-level-model estimate of the human's time (K 0.28 s, click 1.3 s, "
        "one 1.35 s decision per frame, 0.4 s homing)",
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
