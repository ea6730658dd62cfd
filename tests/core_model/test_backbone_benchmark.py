"""benchmarks/backbone_throughput.py stays runnable: its full-size GPU plan and a tiny CPU measurement."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    # as when it runs as a script: its folder's ``common`` is importable
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "backbone_throughput", ROOT / "benchmarks" / "backbone_throughput.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["backbone_throughput"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def args(**kw) -> argparse.Namespace:
    base = dict(
        small=False, batch_infer=32, batch_train=8, iters=1, warmup=0, max_case_s=5.0, no_compile=False
    )
    base.update(compile=False, compile_mode=None, grad_checkpointing=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_full_size_plan_covers_the_issue_rows(bench):
    cases = bench.plan(args(), torch.device("cuda"))
    got = {(c.impl, c.mode, c.precision, c.batch) for c in cases if c.model == "endofm_base"}
    for impl in ("reference", "ours", "ours+compile"):
        for mode, batch in (("infer", 32), ("train", 8)):
            for prec in ("bf16", "fp32"):
                assert (impl, mode, prec, batch) in got
    assert all((c.frames, c.size) == (8, 224) for c in cases)
    # the bar's rows come first, so a short GPU window still measures them
    first = [(c.impl, c.mode, c.precision) for c in cases[:4]]
    assert first == [
        ("reference", "infer", "bf16"),
        ("ours", "infer", "bf16"),
        ("reference", "train", "bf16"),
        ("ours", "train", "bf16"),
    ]
    assert not any("compile" in c.impl for c in bench.plan(args(no_compile=True), torch.device("cuda")))


def test_tiny_rows_measure_both_implementations(bench, monkeypatch):
    from core_model.models import get_config

    monkeypatch.setattr(
        bench, "get_config", lambda name: get_config(name, depth=2, embed_dim=48, img_size=32)
    )
    tiny = [
        bench.Case("endofm_tiny", impl, mode, "fp32", 1, 2, 32)
        for impl in ("reference", "ours")
        for mode in ("infer", "train")
    ]
    grouped = bench.groups(tiny, interleave=True)
    assert [len(g) for g in grouped] == [1, 1, 1, 1]  # infer/train alternate: nothing to pair
    tiny.sort(key=lambda c: c.mode)
    grouped = bench.groups(tiny, interleave=True)
    assert [[c.impl for c in g] for g in grouped] == [["reference", "ours"], ["reference", "ours"]]
    rows = [r for g in grouped for r in bench.run_cases(g, torch.device("cpu"), args())]
    for r in rows:
        assert r["clips_per_s"] > 0 and r["iters"] == 1 and r["peak_mem_gib"] is None
    summary = bench.summarize(rows, torch.device("cpu"), [])
    assert summary["event"] == "summary" and summary["machine"]
    fig = summary["figures"]["endofm_tiny/train/fp32/ours_vs_reference"]
    assert fig["speedup"] == pytest.approx(fig["ours_clips_per_s"] / fig["reference_clips_per_s"], rel=1e-2)
    json.dumps(summary)  # one JSON object per line


@pytest.mark.slow
def test_small_mode_end_to_end():
    import subprocess

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "backbone_throughput.py"), "--small"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=True,
    ).stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert rows[-1]["event"] == "summary"
    assert all("error" not in r for r in rows[:-1])
    assert "endofm_base/ours/infer/fp32/b1" in rows[-1]["clips_per_s"]


def test_bf16_weight_rows_run(bench, monkeypatch):
    from core_model.models import get_config

    monkeypatch.setattr(
        bench, "get_config", lambda name: get_config(name, depth=1, embed_dim=48, img_size=32)
    )
    row = bench.run_case(
        bench.Case("endofm_tiny", "ours+bf16weights", "infer", "bf16", 1, 2, 32), torch.device("cpu"), args()
    )
    assert row["clips_per_s"] > 0


def test_gpu_summary_reports_the_bar(bench, monkeypatch):
    """The summary computes the issue's bar from GPU rows (fed synthetic rows: no GPU needed)."""
    monkeypatch.setattr(bench, "machine_name", lambda device: "NVIDIA H200")
    rows = []
    figures = {
        "reference": (400.0, 100.0, 10.0),
        "ours": (500.0, 150.0, 6.0),
        "ours+compile": (820.0, 190.0, 7.0),
    }
    for impl, (inf, train, peak) in figures.items():
        for mode, cps in (("infer", inf), ("train", train)):
            row = dict(model="endofm_base", impl=impl, mode=mode, precision="bf16", batch=8)
            rows.append(row | {"clips_per_s": cps, "peak_mem_gib": peak})
    s = bench.summarize(rows, torch.device("cuda"), ["x"])
    bar = s["bar"]
    assert s["machine"] == "NVIDIA H200" and s["skipped"] == ["x"]
    assert (
        bar["inference_bf16_speedup"] == 2.05 and bar["inference_bf16_ge_2x"]
    )  # best of ours / ours+compile
    assert (
        bar["train_bf16_speedup"] == 1.9 and bar["train_bf16_ge_1.7x"] and bar["train_bf16_peak_not_higher"]
    )
    assert bar["reference_vs_official_h200"]["infer/bf16"]["ratio"] == round(400 / 391, 3)


def test_main_prints_json_lines_ending_in_a_summary(bench, monkeypatch, capsys):
    from core_model.models import get_config

    # every named model shrunk to one small block so the whole --small plan runs in seconds
    monkeypatch.setattr(
        bench, "get_config", lambda name: get_config(name, depth=1, embed_dim=48, num_heads=3)
    )
    assert bench.main(["--small", "--iters", "1", "--warmup", "0"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = lines[:-1], lines[-1]
    assert len(rows) == 10 and all("error" not in r for r in rows)
    assert all(r["interleaved"] for r in rows)  # reference and ours timed in turn
    assert summary["event"] == "summary" and summary["device"] == "cpu"
    assert "endofm_base/ours/infer/fp32/b1" in summary["clips_per_s"]
