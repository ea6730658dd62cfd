"""A crafted checkpoint never runs code, whichever door it is handed to (issue 19 row 1, issue 24 section 3).

Every loader in the tree gets the same malicious pickle: a ``torch.save``d dict whose value has a ``__reduce__`` that
would create a marker file when unpickled. The payload must never run, the user's error must name the file, and it
must not pass on PyTorch's advice to retry with the weights-only guard switched off.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ADVICE = ("weights_only=False", "weights_only` set to `False", "can still be loaded")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling creates the marker file


def _evil(path: Path, marker: Path, layout: str = "run") -> Path:
    """A checkpoint that looks like what the loader expects, with the payload inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bait = {
        "run": {"format": "endofm-run", "format_version": 1, "kind": "finetune", "model": _Payload(marker)},
        "pretrain": {
            "format": "endofm-run",
            "format_version": 1,
            "kind": "pretrain",
            "student": _Payload(marker),
        },
        "official": {"teacher": {"backbone.cls_token": torch.zeros(1)}, "student": _Payload(marker)},
    }[layout]
    torch.save(bait, path)
    assert not marker.exists()
    return path


def _check(message: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "the payload ran"
    assert str(path) in message or path.name in message, f"the error does not name the file: {message}"
    assert not any(a in message for a in ADVICE), f"the error passes on PyTorch's unsafe advice: {message}"


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_finetune_resume(tmp_path, capsys):
    from core_model.finetune import cli

    marker = tmp_path / "PWNED"
    out = tmp_path / "run"
    path = _evil(out / "checkpoint.pth", marker)
    manifest = tmp_path / "m.json"
    code = cli.main(["--manifest", str(manifest), "--out", str(out), "--tasks", "classification", "--resume"])
    assert code != 0
    errors = [e for e in _events(capsys.readouterr().out) if e["event"] == "error"]
    assert errors
    _check(errors[0]["message"], path, marker)


def test_finetune_best_checkpoint(tmp_path):
    from core_model.training import RunCheckpointError, load_run_checkpoint

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "run" / "best.pth", marker)
    with pytest.raises(RunCheckpointError) as err:
        load_run_checkpoint(path, "finetune-best", ("model",))  # what finetune() reads best.pth with
    _check(str(err.value), path, marker)


def test_finetune_init_checkpoint(tmp_path, capsys):
    from core_model.finetune import cli

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "endo_fm.pth", marker, "official")
    manifest = tmp_path / "m.json"
    code = cli.main(
        [
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "run"),
            "--tasks",
            "classification",
            "--init",
            str(path),
        ]
    )
    assert code != 0
    messages = [e["message"] for e in _events(capsys.readouterr().out) if e["event"] == "error"]
    assert not marker.exists()
    if any(str(path) in m for m in messages):
        _check(next(m for m in messages if str(path) in m), path, marker)
    else:  # the manifest is checked first; hand the file to the init loader itself
        from core_model.checkpoint import CheckpointError
        from core_model.finetune.config import FinetuneConfig
        from core_model.finetune.modeling import build_task_model

        cfg = FinetuneConfig.from_dict(
            {
                "manifest": str(manifest),
                "out_dir": str(tmp_path / "run"),
                "tasks": ["classification"],
                "init": str(path),
            }
        )
        with pytest.raises(CheckpointError) as err:
            build_task_model(cfg, {"classification": ("normal", "polyp")})
        _check(str(err.value), path, marker)


def test_pretrain_resume_and_init(tmp_path, capsys):
    from core_model.pretrain import cli
    from tests.core_model.test_pretrain_support import TINY_OVERRIDES, write_tiny_videos

    data = tmp_path / "videos"
    write_tiny_videos(data, n=2, frames=6)
    sets = []
    for item in [*TINY_OVERRIDES, f"data.path={data}"]:
        sets += ["--set", item]
    marker = tmp_path / "PWNED"

    out = tmp_path / "run"
    path = _evil(out / "checkpoint.pth", marker, "pretrain")
    assert cli.main(["--out", str(out), "--resume", "--json", *sets]) == 2
    _check(capsys.readouterr().err, path, marker)

    start = _evil(tmp_path / "checkpoint_official.pth", marker, "official")
    assert cli.main(["--out", str(tmp_path / "run2"), "--json", *sets, "--init", str(start)]) == 2
    _check(capsys.readouterr().err, start, marker)


def test_convert_load_model_and_create_model(tmp_path, capsys):
    from core_model.checkpoint import CheckpointError, load_backbone_state_dict
    from core_model.checkpoint_cli import main as convert_main
    from core_model.models import create_model

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "endo_fm.pth", marker, "official")
    assert convert_main([str(path), "-o", str(tmp_path / "out")]) != 0
    _check(capsys.readouterr().err, path, marker)
    from core_model.loading import load_model

    run = _evil(
        tmp_path / "run" / "checkpoint.pth", marker
    )  # load_model also reads fine-tune run checkpoints
    for load in (
        lambda: create_model("endofm_tiny", checkpoint=path),
        lambda: load_backbone_state_dict(path),
        lambda: load_model(path),  # the one door of the app, inference and fine-tune init
    ):
        with pytest.raises(CheckpointError) as err:
            load()
        _check(str(err.value), path, marker)
    with pytest.raises(CheckpointError) as err:
        load_model(run)
    _check(str(err.value), run, marker)


def test_model_import_in_the_app(tmp_path):
    from endoreview.services.registry import RegistryError, RegistryService
    from endoreview.store import Store

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "endo_fm.pth", marker, "official")
    store = Store.open(str(tmp_path / "db.sqlite3"), reviewer="tester")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def runner(cmd):
            return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=tmp_path)

        with pytest.raises(RegistryError) as err:
            RegistryService(store, root=tmp_path / "models").import_official(path, runner=runner)
    finally:
        store.close()
    _check(str(err.value), path, marker)


def test_no_unsafe_load_anywhere_in_the_tree():
    hits = subprocess.run(
        ["grep", "-rn", "weights_only=False", "core_model", "endoreview"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert hits == "", hits
