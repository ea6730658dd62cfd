"""benchmarks/gpu_suite.sh and benchmarks/site_adaptation.py stay runnable (their --small modes, on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_gpu_suite_small_runs_every_step_on_the_cpu():
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = _lines(proc.stdout)
    steps = {e["step"]: e for e in lines if e["event"] == "suite_step"}
    assert set(steps) == {
        "backbone_inference_and_train",
        "finetune_step_and_12gb_fit",
        "pretrain_step",
        "pytest_gpu",
    }
    for name, step in steps.items():
        assert step["rc"] == 0, (name, step)
        if name != "pytest_gpu":
            assert step["summary"]["event"] == "summary", name  # each benchmark ended with its summary line
    summary = lines[-1]
    assert summary["event"] == "suite_summary" and summary["ok"] and summary["mode"] == "small"
    assert proc.returncode == 0


@pytest.mark.slow
def test_site_adaptation_small_reports_before_after_and_baselines(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "site_adaptation.py"),
            "--small",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _lines(proc.stdout)[-1]
    assert summary["event"] == "summary" and summary["machine"]
    for name in ("before", "after", "random_init", "mean_colour"):
        assert 0.0 <= summary[f"{name}_knn_auroc"]["mean"] <= 1.0
    assert "knn_gain" in summary
