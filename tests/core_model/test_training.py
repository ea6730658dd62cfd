"""The shared training infrastructure: RNG state, the one run-checkpoint format."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from core_model.training import (
    RunCheckpointError,
    load_run_checkpoint,
    restore,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
)


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(1).tolist(), random.random()


def test_rng_state_survives_a_safe_checkpoint_round_trip(tmp_path):
    np.random.randn(1)  # leaves a cached gaussian in NumPy's state
    path = save_run_checkpoint(tmp_path / "c.pth", "finetune", {"rng": rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    set_rng_state(load_run_checkpoint(path, "finetune", ("rng",))["rng"])  # loaded with weights_only=True
    assert _draws() == expected


def test_run_checkpoint_restores_objects_by_name_and_refuses_the_wrong_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = save_run_checkpoint(
        tmp_path / "c.pth", "pretrain", {"model": model.state_dict(), "optimizer": opt.state_dict()}
    )
    m2 = torch.nn.Linear(3, 2)
    o2 = torch.optim.AdamW(m2.parameters())
    restore(load_run_checkpoint(path, "pretrain"), path, model=m2, optimizer=o2)
    assert torch.equal(m2.weight, model.weight) and o2.state_dict()["state"][0]["step"] == 1

    with pytest.raises(RunCheckpointError, match="a pretrain run checkpoint, not a finetune one"):
        load_run_checkpoint(path, "finetune")
    with pytest.raises(RunCheckpointError, match=r"c\.pth: 'model' does not fit"):
        restore(load_run_checkpoint(path, "pretrain"), path, model=torch.nn.Linear(4, 2))
    newer = tmp_path / "newer.pth"
    torch.save({"format": "endofm-run", "format_version": 99, "kind": "pretrain"}, newer)
    with pytest.raises(RunCheckpointError, match="newer.pth: run checkpoint version 99 is newer"):
        load_run_checkpoint(newer, "pretrain")
    legacy = tmp_path / "legacy.pth"  # pretraining checkpoints written before the one format still resume
    torch.save({"format": "endofm-pretrain", "format_version": 1, "epoch": 2}, legacy)
    assert load_run_checkpoint(legacy, "pretrain", ("epoch",))["epoch"] == 2
    with pytest.raises(RunCheckpointError, match="missing.pth: no run checkpoint"):
        load_run_checkpoint(tmp_path / "missing.pth", "pretrain")


def test_out_of_memory_back_off_halves_the_batch_and_lets_other_errors_through():
    from core_model.training import halve_batch_on_oom

    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert halve_batch_on_oom(oom, 8, "cpu") == 4
    assert halve_batch_on_oom(oom, 3) == 1
    assert halve_batch_on_oom(oom, 1) is None  # nothing left to halve: the caller re-raises
    assert halve_batch_on_oom(ValueError("bad manifest"), 8) is None
