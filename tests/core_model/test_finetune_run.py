"""A fine-tuning run end to end on a tiny dataset: events, checkpoints, resume, early stopping, OOM retry, LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core_model.finetune.config import FinetuneConfig
from core_model.finetune.run import finetune
from tests.core_model.test_finetune_data import make_manifest

SMALL_HEADS = {
    "detection": {"fpn_channels": 32, "num_convs": 1},
    "segmentation": {"decoder_channels": [16, 16, 16, 16]},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("ft-run"), n_videos=6, n_frames=8, size=64)


def _cfg(manifest: Path, out: Path, **kw) -> FinetuneConfig:
    base = dict(
        manifest=str(manifest),
        out_dir=str(out),
        tasks=("classification", "segmentation", "detection"),
        num_frames=2,
        img_size=32,
        frame_stride=2,
        epochs=2,
        clips_per_video=1,
        head_config=SMALL_HEADS,
        warmup_epochs=0.0,
    )
    base.update(kw)
    return FinetuneConfig(**base)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_run_emits_progress_writes_checkpoints_and_a_loadable_model(manifest, tmp_path):
    events: list[dict] = []
    res = finetune(_cfg(manifest, tmp_path / "run"), events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("epoch") == 2 and "progress" in kinds
    prog = [e for e in events if e["event"] == "progress"]
    assert all({"loss", "eta_s", "lr", "fraction"} <= set(e) for e in prog)
    ep = [e for e in events if e["event"] == "epoch"][-1]
    assert {"classification/f1", "segmentation/dice_seq", "detection/f1", "detection/map50"} <= set(ep["val"])
    assert (tmp_path / "run" / "checkpoint.pth").is_file()
    assert not list((tmp_path / "run").glob("*.tmp*"))  # atomic writes leave no temp files
    from core_model.finetune.modeling import load_task_model_dir

    model, meta = load_task_model_dir(res.model_dir)
    assert set(model.heads) == {"classification", "segmentation", "detection"}
    assert meta.preprocess["num_frames"] == 2 and meta.preprocess["img_size"] == 32
    assert meta.heads["classification"]["classes"] == ["normal", "abnormal"]
    assert meta.provenance["manifest_sha256_16"] and meta.provenance["metrics"]["val"]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert len(saved["history"]) == 2


def test_same_seed_same_model_and_resume_equals_uninterrupted(manifest, tmp_path):
    cfg = _cfg(manifest, tmp_path / "a", tasks=("classification",), epochs=2, drop_path=0.1)
    a = finetune(cfg)
    b = finetune(cfg.replace(out_dir=str(tmp_path / "b")))
    wa, wb = _weights(Path(a.model_dir)), _weights(Path(b.model_dir))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # interrupted after one epoch, then resumed
    assert finetune(cfg.replace(out_dir=str(tmp_path / "c")), stop_after_epochs=1) is None
    events: list[dict] = []
    c = finetune(cfg.replace(out_dir=str(tmp_path / "c")), events.append, resume=True)
    assert events[0]["event"] == "resumed" and events[0]["epoch"] == 1
    wc = _weights(Path(c.model_dir))
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        finetune(cfg.replace(out_dir=str(tmp_path / "empty")), resume=True)


def test_early_stopping_when_the_validation_metric_stalls(manifest, tmp_path):
    events: list[dict] = []
    cfg = _cfg(manifest, tmp_path / "es", tasks=("classification",), epochs=6, lr=0.0, min_lr=0.0, patience=2)
    res = finetune(cfg, events.append)
    stop = [e for e in events if e["event"] == "early_stop"]
    assert stop and stop[0]["best_epoch"] == 0
    assert len(res.history) == 3  # epoch 0 best, 1 and 2 without improvement


def test_cuda_oom_retries_with_half_the_batch(manifest, tmp_path, monkeypatch):
    import core_model.finetune.run as run_mod

    real = run_mod.train_one_epoch
    calls = {"n": 0}

    def flaky(model, loader, *a, **kw):
        calls["n"] += 1
        if loader.batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, loader, *a, **kw)

    monkeypatch.setattr(run_mod, "train_one_epoch", flaky)
    events: list[dict] = []
    finetune(
        _cfg(manifest, tmp_path / "oom", tasks=("classification",), epochs=1, batch_size=4), events.append
    )
    warn = [e for e in events if e["event"] == "warning"]
    assert warn and "batch 4" in warn[0]["message"] and "batch 2" in warn[0]["message"]
    assert events[-1]["event"] == "done"


def test_lora_trains_adapters_only_and_exports_plain_weights(manifest, tmp_path):
    from core_model.finetune.lora import LoRALinear, apply_lora, merge_lora
    from core_model.models import create_model

    m = create_model("endofm_tiny")
    x = torch.randn(1, 3, 2, 32, 32)
    m.eval()
    ref = m(x)
    n = apply_lora(m, rank=4)
    assert n > 0 and not any(p.requires_grad for k, p in m.named_parameters() if "lora_" not in k)
    assert torch.allclose(m(x), ref, atol=1e-6)  # B = 0: starts at the pre-trained function
    for mod in m.modules():
        if isinstance(mod, LoRALinear):
            torch.nn.init.normal_(mod.lora_b, std=0.02)
    y = m(x)
    merge_lora(m)
    assert torch.allclose(m(x), y, atol=1e-5)
    assert set(m.state_dict()) == set(create_model("endofm_tiny").state_dict())
    res = finetune(_cfg(manifest, tmp_path / "lora", tasks=("classification",), epochs=1, mode="lora"))
    assert "lora" not in " ".join(_weights(Path(res.model_dir)))


def test_cli_reports_bad_input_as_an_error_event(manifest, tmp_path, capsys):
    from core_model.finetune.cli import main

    rc = main(["--manifest", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")])
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 2 and out[-1]["event"] == "error" and "missing.json" in out[-1]["message"]
    rc = main(
        [
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "o"),
            "--tasks",
            "segmentation",
            "--preset",
            "polypdiag",
        ]
    )
    assert rc == 2 and "polypdiag" in json.loads(capsys.readouterr().out.splitlines()[-1])["message"]


def test_evaluate_cli_scores_a_model_and_writes_per_frame_outcomes(manifest, tmp_path, capsys):
    from core_model.finetune.evaluate_cli import main

    res = finetune(_cfg(manifest, tmp_path / "ev", tasks=("segmentation", "detection"), epochs=1))
    out = tmp_path / "ev.json"
    rc = main(["--model", res.model_dir, "--manifest", str(manifest), "--split", "val", "--out", str(out)])
    assert rc == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done" and "segmentation/dice_seq" in done["metrics"]
    saved = json.loads(out.read_text())
    frames = saved["frames"]
    assert set(frames) == {"vid04", "vid05"} and len(frames["vid05"]) == 8
    assert {"dice", "mask_pixels", "det_hit"} <= set(frames["vid05"]["0"])


def test_a_time_budget_stops_training_cleanly_and_says_so(manifest, tmp_path):
    """Issue 22.8: a 3-minute budget ran 8 minutes. With a budget the run stops after the step that would leave no
    time for the last validation and export (never before its first step), validates and checkpoints the partial
    epoch, exports a usable model, and the log (events) and model.json say it stopped on the budget."""
    from core_model.contract import read_model_json
    from core_model.finetune.cli import build_config, build_parser

    cfg = build_config(
        build_parser().parse_args(
            ["--manifest", str(manifest), "--out", str(tmp_path / "run"), "--time-budget-min", "0.05"]
        )
    )
    assert cfg.time_budget_s == pytest.approx(3.0)
    events: list[dict] = []
    cfg = _cfg(manifest, tmp_path / "run", tasks=("classification",), epochs=10_000, time_budget_s=3.0)
    cfg = cfg.replace(calibrate_videos=0)
    res = finetune(cfg, events.append)
    kinds = [e["event"] for e in events]
    assert kinds.count("budget_stop") == 1 and "done" in kinds
    stop = next(e for e in events if e["event"] == "budget_stop")
    assert stop["budget_s"] == 3.0 and stop["epoch"] < 10_000 - 1
    warn = [e["message"] for e in events if e["event"] == "warning"]
    assert any(m.startswith("time budget of 3 s reached: training stopped after") for m in warn), warn
    assert any(e["event"] == "progress" for e in events)  # at least one step trained
    prov = read_model_json(res.model_dir).provenance
    assert prov["stopped"]["reason"] == "time budget" and prov["time_budget_s"] == 3.0
    assert prov["epochs_run"] == stop["epoch"] + 1 == len(res.history) and "val" in res.metrics
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert int(ckpt["epoch"]) == stop["epoch"]  # the last (possibly partial) epoch is saved: --resume goes on
