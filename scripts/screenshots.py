"""Screenshots of the main views, taken from the real app under Xvfb on the built-in demo.

    python scripts/screenshots.py                      # 1366x768, 1920x1080 and 2560x1440 into docs/screens/
    python scripts/screenshots.py --sizes 1366x768 --data-dir /tmp/er-demo   # reuse a demo data folder

For each screen size a fresh X server (Xvfb) and a fresh app process: the empty first launch, the library after
the demo is set up (and analysed when the demo model is installed), the player with overlays and timeline, the
jobs panel, the shortcuts dialog and the review tools (Box tool and bulk-accept count on an analysed frame, File →
Export, a failed import kept in sight, the review queue switching video; keys sent with xdotool under openbox), always
with the jobs panel open. Files: ``docs/screens/<view>-<W>x<H>.png``. With ``--data-dir`` of an earlier run (the demo
already analysed) it retakes 03-10 only; 01 and 02 need a fresh data folder. What to look for: docs/screens/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shoot(out_dir: Path, size: str) -> int:
    """Runs inside the Xvfb display: drive the app and save PNGs."""
    from types import SimpleNamespace

    from endoreview.ui.app import create_main_window, ensure_app
    from endoreview.ui.app import spin as spin_app

    w, h = (int(v) for v in size.split("x"))
    app = ensure_app()
    win = create_main_window(
        SimpleNamespace(db=None, reviewer="dr_demo"), job_module=os.environ.get("SCREENSHOT_JOB_MODULE")
    )
    win.setGeometry(0, 0, w, h)
    win.showMaximized()

    def spin(cond, timeout: float) -> bool:
        return spin_app(cond, timeout, 0.01)

    def save(name: str) -> None:
        spin(lambda: False, 0.6)
        screen = app.primaryScreen()
        pix = screen.grabWindow(0)
        path = out_dir / f"{name}-{w}x{h}.png"
        pix.save(str(path))
        print(path, flush=True)

    win.start()
    spin(lambda: win.library_ctl.ready and "empty" in win.library.empty.text(), 60)
    if not win.library.model.rows:
        save("01-first-launch")
    win.demo_ctl.start()
    spin(lambda: win.demo_ctl.result is not None, 600)
    spin(lambda: len(win.library.model.rows) >= 1, 60)
    if win.demo_ctl.result.notice and os.environ.get(
        "SCREENSHOT_PREDICTOR"
    ):  # preview without the demo model
        stand_in = Path(tempfile.mkdtemp(prefix="preview-model-"))
        (stand_in / "model.json").write_text("{}")
        win.analysis_ctl.analyse(list(win.demo_ctl.result.video_ids), model_dir=str(stand_in))
        spin(lambda: bool(win.jobs.jobs), 30)
    if (
        win.demo_ctl.result.to_analyse and not win.demo_ctl.result.notice
    ):  # the demo model analyses the videos
        spin(lambda: bool(win.jobs.jobs), 60)
    if win.jobs.jobs:  # analysing with the demo model
        spin(lambda: any(j.entry.fraction > 0.3 for j in win.jobs.jobs), 300)
        save("02-analysing")
        spin(lambda: not win.jobs.running, 900)
        win.library_ctl.refresh()
    spin(lambda: all(r.thumb is not None for r in win.library.model.rows), 120)
    win.show_jobs()  # the tightest layout (also on a rerun over an analysed demo, where no job opens it)
    spin(lambda: False, 0.5)
    save("03-library")
    rows = win.library.model.rows
    target = next((r for r in rows if r.finding), rows[0])
    win.open_video(target.video_id)
    spin(lambda: win.player.shown is not None and win.player.shown[1], 60)
    spin(lambda: win.review_ctl.tracks is not None, 30)
    pred = win.review_ctl.tracks.predictions if win.review_ctl.tracks else None
    frame = 0
    if pred is not None and pred.boxes:
        frame = sorted(pred.boxes)[len(pred.boxes) // 2]
    elif pred is not None and pred.masks:
        frame = sorted(pred.masks)[len(pred.masks) // 2]
    else:
        frame = target.frame_count // 2
    win.player.seek(frame)
    spin(lambda: win.player.shown == (frame, True), 30)
    save("04-player")
    win.player_widget.view.zoom(2.0)
    save("05-player-zoomed")
    win.player_widget.view.fit()
    review_screens(win, app, spin, save, frame)
    win.tabs.setCurrentIndex(0)
    win.show_help()
    save("06-shortcuts")
    win._help.close()
    win.close()
    return 0


def xkey(*keys: str) -> None:
    """Real key presses through the X server (xdotool), to the focused window."""
    if shutil.which("xdotool"):
        subprocess.run(["xdotool", "key", "--delay", "80", *keys], check=False)


def review_screens(win, app, spin, save, frame: int) -> None:
    """The review tools on an analysed frame: what the slider hides stays out of reach, bulk accept counts, File →
    Export, a failed import kept in sight, the review queue switching video."""
    ctl = win.editing()
    spin(lambda: ctl.loaded, 30)
    win.player_widget.view.setFocus()
    xkey("t")  # the Box tool
    spin(lambda: ctl.tools.tool == "box", 5)
    a, b = max(0, frame - 10), min(win.player.frame_count, frame + 10)
    ctl.session.set_marks(a, b)
    spin(lambda: False, 0.5)
    save("07-review-box-tool")
    win.show_export()
    dlg = win._export
    dlg.all_labels.setChecked(True)
    dlg.format.setCurrentIndex(dlg.format.findData("yolo-det"))  # shows the warning about suggestions
    save("08-export-dialog")
    dlg.reject()
    bad = Path(tempfile.mkdtemp(prefix="broken-")) / "broken_procedure.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 40)
    win.library_ctl.import_paths([str(bad)], show_dialog=False)
    spin(
        lambda: win.library_ctl.failure_button is not None and win.library_ctl.failure_button.isVisible(), 30
    )
    save("09-import-problem")
    win.player_widget.view.setFocus()
    xkey("n")  # the review queue: most uncertain region, maybe in another video
    spin(lambda: win.player_widget.switched.isVisible(), 30)
    spin(lambda: False, 1.0)
    save("10-review-queue")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1366x768,1920x1080,2560x1440")
    ap.add_argument("--out", default=str(REPO / "docs" / "screens"))
    ap.add_argument("--data-dir", help="user data folder for the demo (default: a new temporary one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument(
        "--job-module",
        help="job entry module for previews without the demo model (e.g. tests.ui.job_predictor)",
    )
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--display", type=int, default=91, help="first X display number to use (one per size)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        return shoot(out, args.child)
    if shutil.which("Xvfb") is None:
        print(
            "Xvfb is needed: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libxcb-cursor0"
        )
        return 2
    data = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="er-screens-"))
    code = 0
    for k, size in enumerate(args.sizes.split(",")):
        display = f":{args.display + k}"
        xvfb = subprocess.Popen(
            ["Xvfb", display, "-screen", "0", f"{size}x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
        )
        wm = None
        try:
            time.sleep(1.0)
            if shutil.which("openbox"):  # a real window manager: decorations, maximise, focus as on a desktop
                wm = subprocess.Popen(
                    ["openbox"], env=dict(os.environ, DISPLAY=display), stderr=subprocess.DEVNULL
                )
                time.sleep(0.5)
            env = dict(
                os.environ,
                DISPLAY=display,
                QT_QPA_PLATFORM="xcb",
                ENDOREVIEW_DATA_DIR=str(data / size),
                PYTHONPATH=str(REPO),
            )
            env.pop("ENDOREVIEW_DB_URL", None)
            if args.job_module:
                env["SCREENSHOT_JOB_MODULE"] = args.job_module
            r = subprocess.run(
                [sys.executable, __file__, "--child", size, "--out", str(out)], env=env, cwd=REPO
            )
            code = code or r.returncode
        finally:
            if wm is not None:
                wm.terminate()
                wm.wait(timeout=10)
            xvfb.terminate()
            xvfb.wait(timeout=10)
    return code


if __name__ == "__main__":
    sys.exit(main())
