"""Screenshots of the learning loop, from the real app under Xvfb: the fine-tune dialog, the live curves of a real
(tiny) fine-tune, the Models window and the comparison of the new version with its parent.

    python scripts/screenshots_learning.py            # into docs/screens/finetune_*.png and registry_*.png

Runs on the demo (its phantom videos, three of them shortened to 48 frames, analysed by the bundled demo model and
corrected to their ground truth) in a temporary data folder (never the user's data); the fine-tune starts from the
demo model with the dialog's defaults and a 1-minute budget. Each window is grabbed on its own (``QWidget.grab``).

    python scripts/screenshots_learning.py --out /tmp/x --budget-min 30   # the dialog's default fine-tune, timed

prints the fine-tune's wall time and the held-out comparison with its parent (one JSON line, ``"event": "loop"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shoot(out: Path, budget_min: float = 1.0) -> int:
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO))
    from endoreview.services.demo import DemoSpec, setup_demo
    from endoreview.ui.app import create_main_window
    from endoreview.ui.app import spin as spin_app
    from tests.ui.test_learning_loop_demo import _correct_to_truth

    win = create_main_window(SimpleNamespace(db=None, reviewer="dr_demo"))
    win.resize(1366, 768)
    win.show()

    def spin(cond, timeout: float) -> bool:
        return spin_app(cond, timeout, 0.01)

    def save(widget, name: str) -> None:
        spin(lambda: False, 0.5)
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        print(path, flush=True)

    win.start()
    spin(lambda: win.library_ctl.ready, 60)
    store = win.backend.services.store
    # the demo (its generator, three shortened videos), analysed by the demo model, then corrected to the truth
    demo = setup_demo(store, DemoSpec(videos=DemoSpec().videos[:3], n_frames=48))
    done: list = []
    win.analysis_ctl.finished.connect(done.append)
    win.analysis_ctl.analyse(list(demo.video_ids), model_dir=demo.model_dir)
    spin(lambda: bool(done), 900)
    counts = _correct_to_truth(store, list(demo.video_ids))
    print("corrected:", counts, flush=True)
    ft, reg = win.finetune_ctl, win.registry_ctl
    dlg = ft.open_dialog(win)
    spin(lambda: dlg.plan is not None, 60)
    save(dlg, "finetune_dialog")  # the dialog's defaults on the demo (30 min budget)
    default_plan = dlg.plan
    if budget_min != dlg.budget.value():
        dlg.budget.setValue(budget_min)
        spin(lambda: dlg.plan.budget_min == budget_min, 60)

    t_start = time.monotonic()
    dlg.btn_start.click()
    spin(lambda: bool(ft.monitors), 60)
    mon = ft.monitors[-1]
    spin(lambda: len(mon.loss_y) >= 3, 300)
    save(mon, "finetune_progress")
    spin(lambda: mon.state != "running", budget_min * 60 + 900)
    ft_seconds = time.monotonic() - t_start
    save(mon, "finetune_curves")
    if mon.state != "succeeded":
        print("fine-tune did not succeed:", mon.status.text(), file=sys.stderr)
        return 1
    new_id = int(mon.result["model_version_id"])
    view = reg.open(win, select=new_id)
    spin(lambda: bool(view.selected()) and view.selected()[0].id == new_id, 60)
    view.resize(1200, 700)
    save(view, "registry_view")
    view.btn_compare_parent.click()
    spin(lambda: bool(reg.compares) and reg.compares[-1].state != "running", 600)
    cmp = reg.compares[-1]
    mv = win.backend.services.store.get_model_version(new_id)
    val = str(mv.data_snapshot["splits"]["val"][0])
    cmp.show_frame(val, 24)
    spin(lambda: hasattr(cmp, "images"), 300)
    save(cmp, "registry_compare")
    win.jobs.cancel_all()
    metrics = {r["metric"]: [r.get("a"), r.get("b")] for r in (cmp.result or {}).get("metrics") or []}
    line = {
        "event": "loop",
        "budget_min": budget_min,
        "planned": {"epochs": default_plan.epochs, "estimated_s": round(default_plan.estimated_s)},
        "finetune_s": round(ft_seconds, 1),
        "held_out_parent_vs_child": metrics,
    }
    print(json.dumps(line), flush=True)
    print(
        f"model versions: parent {mv.parent_id}, new {new_id}; val metrics {mv.metrics.get('val')}",
        flush=True,
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "docs" / "screens"))
    p.add_argument(
        "--budget-min", type=float, default=1.0, help="fine-tune budget (the dialog's default is 30)"
    )
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.inside:
        return shoot(out, args.budget_min)
    tmp = tempfile.mkdtemp(prefix="endoreview-shots-")
    env = {**os.environ, "ENDOREVIEW_DATA_DIR": tmp, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--inside", "--out", str(out), "--budget-min", str(args.budget_min)]
    if shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", *cmd]
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        return subprocess.call(cmd, env=env, cwd=REPO)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
