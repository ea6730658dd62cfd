"""The pretraining run as a user drives it: CLI, run directory, resume, NaN stop, bad videos, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core_model.pretrain import cli
from core_model.pretrain.train import train
from tests.core_model.test_pretrain_support import TINY_OVERRIDES, tiny_config, write_tiny_videos

REPO = Path(__file__).resolve().parents[2]


def _set_args(*extra: str, data: Path) -> list[str]:
    args = []
    for item in [*TINY_OVERRIDES, f"data.path={data}", *extra]:
        args += ["--set", item]
    return args


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_cli_run_writes_run_dir_progress_and_exports(tmp_path, capsys):
    videos = write_tiny_videos(tmp_path / "videos", n=2)
    csv = tmp_path / "videos" / "train.csv"
    csv.write_text("".join(f"{v.name},-1\n" for v in videos))  # official format, paths relative to the list
    out = tmp_path / "run"
    rc = cli.main(["--out", str(out), "--json", *_set_args(data=csv)])
    assert rc == 0
    events = _events(capsys.readouterr().out)
    progress = [e for e in events if e["event"] == "progress"]
    assert len(progress) == 2  # 2 clips / batch 2 = 1 step x 2 epochs
    assert {"epoch", "step", "loss", "lr"} <= set(progress[0])
    assert events[-1]["event"] == "done"
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in progress)

    from core_model.pretrain import load_config

    saved = load_config(out / "config.yaml")
    assert saved.data.path == str(csv) and saved.head.out_dim == 64
    assert len((out / "metrics.jsonl").read_text().splitlines()) >= len(events)
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert {"student", "teacher", "optimizer", "scaler", "dino_loss", "epoch", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["dino_loss"]["center"].shape == (1, 64)
    assert (out / "checkpoint0000.pth").is_file() and (out / "checkpoint0001.pth").is_file()

    # official layout: {'teacher': {'backbone.*', 'head.*'}}, read by the project's converter and by create_model
    official = torch.load(out / "export" / "teacher_official.pth", weights_only=True)
    teacher = official["teacher"]
    assert "head.last_layer.weight_g" in teacher and "backbone.cls_token" in teacher
    from core_model.models import create_model

    overrides = dict(embed_dim=48, depth=1, num_heads=3, img_size=32, num_frames=2)
    from_official = create_model(
        "endofm_tiny", checkpoint=out / "export" / "teacher_official.pth", **overrides
    )
    from_dir = create_model("endofm_tiny", checkpoint=out / "export" / "model", **overrides)
    for k, v in from_official.state_dict().items():
        assert torch.equal(v, ckpt["teacher"][f"backbone.{k}"])
        assert torch.equal(from_dir.state_dict()[k], v)


@pytest.mark.parametrize("extra", [(), ("head.use_bn=true",)], ids=["official", "bn_head"])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, extra):
    data = tmp_path / "videos"
    write_tiny_videos(data, n=2)  # one step per epoch: the resume boundary is all that matters
    full = train(tiny_config(data, *extra), tmp_path / "full")
    part = train(tiny_config(data, *extra), tmp_path / "part", stop_after_epochs=1)
    assert part.epochs_done == 1 and part.export_dir is None
    assert torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)["epoch"] == 1
    resumed = train(tiny_config(data, *extra), tmp_path / "part", resume=True)
    assert resumed.epochs_done == 2
    a = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)
    for key in ("student", "teacher"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), f"{key}.{name} differs after resume"
    assert torch.equal(a["dino_loss"]["center"], b["dino_loss"]["center"])
    assert full.last_loss == resumed.last_loss


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    data = tmp_path / "videos"
    write_tiny_videos(data, n=2)
    from core_model.pretrain.loss import DINOLoss

    original = DINOLoss.forward

    def poisoned(self, student_out, teacher_out, epoch):
        loss = original(self, student_out, teacher_out, epoch)
        return loss * float("nan") if epoch == 1 else loss

    monkeypatch.setattr(DINOLoss, "forward", poisoned)
    out = tmp_path / "run"
    rc = cli.main(["--out", str(out), "--json", *_set_args(data=data)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "loss is nan at epoch 1 step 0" in captured.err and "checkpoint.pth" in captured.err
    assert _events(captured.out)[-1]["event"] == "error"
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["student"].values())
    assert not (out / "export").exists()


def test_undecodable_video_is_logged_and_skipped(tmp_path, caplog):
    data = tmp_path / "videos"
    write_tiny_videos(data, n=2)
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    result = train(
        tiny_config(data, "optim.epochs=1", "optim.warmup_epochs=0", "data.batch_size_per_gpu=3"),
        tmp_path / "run",
    )
    assert result.epochs_done == 1 and torch.isfinite(torch.tensor(result.last_loss))
    assert any("broken.mp4" in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path / "r"), "--set", "optim.lrr=1"]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    bad_csv = tmp_path / "list.csv"
    bad_csv.write_text("only-one-field\n")
    assert cli.main(["--out", str(tmp_path / "r"), *_set_args(data=bad_csv)]) == 2
    assert f"{bad_csv}:1" in capsys.readouterr().err
    assert cli.main(["--out", str(tmp_path / "fresh"), "--resume", *_set_args(data=tmp_path)]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_torchrun_two_processes_on_cpu(tmp_path):
    data = tmp_path / "videos"
    write_tiny_videos(data, n=8)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "core_model", "pretrain", "--out", str(out), "--json"]
    cmd += _set_args("data.num_workers=1", data=data)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = _events(proc.stdout)
    start = [e for e in events if e["event"] == "start"]
    assert len(start) == 1 and start[0]["world_size"] == 2  # only rank 0 prints
    assert start[0]["steps_per_epoch"] == 2  # 8 clips / (2 processes x batch 2)
    assert len([e for e in events if e["event"] == "progress"]) == 4
    assert (out / "checkpoint.pth").is_file() and (out / "export" / "teacher_official.pth").is_file()
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize(
    "bad", ["views.global_frames=[8]", "run.precision=fp8", "augment.global_scale=[0.5]"]
)
def test_invalid_config_values_are_rejected(bad, tmp_path):
    from core_model.pretrain.config import ConfigError

    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        tiny_config(tmp_path, bad)


def test_shipped_configs_load_and_the_official_one_is_the_default_recipe():
    from core_model.pretrain import load_config
    from core_model.pretrain.config import PretrainConfig

    demo = load_config("demo_tiny", ["data.path=clips"])  # built-in configs load by name
    assert demo.model.arch == "endofm_tiny" and demo.views.global_size == 112
    assert demo.views.global_frames == [4, 8] and demo.views.local_size == 48 and demo.head.out_dim == 256
    official = load_config("endofm_official")
    expected = PretrainConfig()
    expected.data.path = official.data.path
    assert official == expected
    assert load_config(None, ["optim.min_lr=1e-5"]).optim.min_lr == 1e-5  # YAML 1.1 reads 1e-5 as a string


def test_continuing_from_an_official_run_checkpoint_restores_student_teacher_and_centre(tmp_path):
    from core_model.pretrain import build_models
    from core_model.pretrain.loss import DINOLoss
    from core_model.pretrain.state import export_official, read_start_checkpoint
    from core_model.pretrain.train import build_loss, continue_from

    data = tmp_path / "videos"
    cfg = tiny_config(data)
    student, teacher = build_models(cfg)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn_like(p))  # weights that differ from any fresh initialisation
    loss = DINOLoss(64, 10, [0.04])
    loss.center.normal_()
    path = export_official(tmp_path / "checkpoint.pth", teacher, student, 3, loss)
    cont = tiny_config(data, f"model.init_checkpoint={path}")
    start = read_start_checkpoint(path)
    s2, t2 = build_models(cont, start)
    for name, value in student.state_dict().items():
        assert torch.equal(s2.state_dict()[name], value), name  # the student continues as the student
    for name, value in teacher.state_dict().items():
        assert torch.equal(t2.state_dict()[name], value), name  # and the teacher as the teacher
    new_loss = build_loss(cont)
    continue_from(start, new_loss)
    assert torch.equal(new_loss.center, loss.center)

    wrong_head = tiny_config(data, f"model.init_checkpoint={path}", "head.out_dim=32")
    s3, t3 = build_models(wrong_head)  # a head of another size starts from scratch; the backbone still loads
    assert torch.equal(s3.backbone.cls_token, student.backbone.cls_token)
    assert torch.equal(s3.head.last_layer.weight_v, t3.head.last_layer.weight_v)


def test_cli_continues_from_the_bundled_backbone_unless_told_otherwise(tmp_path, capsys):
    from core_model.checkpoint import load_model_dir
    from core_model.pretrain.state import bundled_model_dir

    videos = write_tiny_videos(tmp_path / "videos", n=2)
    small = [o for o in TINY_OVERRIDES if not o.startswith("model.")] + [
        "optim.epochs=1",
        f"data.path={videos[0].parent}",
    ]
    args = [a for o in small for a in ("--set", o)]
    assert cli.main(["--out", str(tmp_path / "run"), "--json", *args]) == 0
    start = next(e for e in _events(capsys.readouterr().out) if e["event"] == "start")
    assert start["init"] == str(bundled_model_dir()) and start["arch"] == "endofm_tiny"
    _, meta = load_model_dir(tmp_path / "run" / "export" / "model")
    assert meta.arch_name == "endofm_tiny" and meta.config.embed_dim == 192  # the bundled backbone, continued

    assert (
        cli.main(
            [
                "--out",
                str(tmp_path / "scratch"),
                "--json",
                *args,
                "--from-scratch",
                "--set",
                "model.arch=endofm_tiny",
                "--set",
                "model.overrides={depth: 1}",
            ]
        )
        == 0
    )
    start = next(e for e in _events(capsys.readouterr().out) if e["event"] == "start")
    assert start["init"] == "scratch"


def test_a_run_starts_from_the_bundled_backbone_by_default():
    from core_model.checkpoint import load_model_dir
    from core_model.pretrain import build_models, load_config
    from core_model.pretrain.state import bundled_model_dir

    cfg = load_config("demo_tiny")
    assert cfg.model.init_checkpoint == "bundled"
    student, teacher = build_models(cfg)
    state, meta = load_model_dir(bundled_model_dir())
    assert student.backbone.cfg.embed_dim == meta.config.embed_dim
    for k, v in student.backbone.state_dict().items():
        assert torch.equal(v, state[f"backbone.{k}"].to(v.dtype)), k
        assert torch.equal(teacher.backbone.state_dict()[k], v), k
    scratch, _ = build_models(load_config("demo_tiny", ["model.init_checkpoint=scratch"]))
    assert not torch.equal(scratch.backbone.cls_token, student.backbone.cls_token)


def test_terminal_progress_bar_is_human_readable():
    import io

    stream = io.StringIO()
    bar = cli._ProgressBar(stream)
    bar({"event": "start", "clips": 8, "steps_per_epoch": 4, "start_epoch": 0, "epochs": 2, "device": "cpu",
         "precision": "fp32"})  # fmt: skip
    bar(
        {"event": "progress", "epoch": 0, "step": 2, "steps": 4, "loss": 5.25, "lr": 1e-4, "clips_per_s": 3.0}
    )
    bar({"event": "epoch", "epoch": 0, "loss": 5.0, "seconds": 12.0})
    text = stream.getvalue()
    assert "pretraining 8 clips, 4 steps/epoch" in text
    assert "\repoch   0 [###############---------------] 2/4 loss 5.2500 lr 1.00e-04 3.00 clips/s" in text
    assert "epoch 0 done: loss 5.0000" in text
