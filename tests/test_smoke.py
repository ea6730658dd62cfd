"""The installation check a hospital IT department runs: the app opens a phantom video and the bundled demo
model analyses it through a real background job, offscreen, in a throw-away data folder."""

import json
import os
import subprocess
import sys


def test_smoke_test_passes_end_to_end(tmp_path):
    env = {**os.environ, "ENDOREVIEW_DATA_DIR": str(tmp_path / "data"), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-m", "endoreview", "--smoke-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0, out.stdout + out.stderr
    steps = {e.get("step"): e for e in events if e["event"] == "step"}
    assert steps["analysed"]["frames"] == 12
    assert set(steps["analysed"]["classes"]) == {"normal", "abnormal"}
    assert events[-1] == {**events[-1], "event": "done", "ok": True}
