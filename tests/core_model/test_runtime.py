"""core_model.runtime: device choice, autocast, single-process fallback, seeding, a real 2-process gloo group."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from core_model import runtime


def test_cpu_device_and_nullcontext_autocast(monkeypatch):
    monkeypatch.delenv("ENDOFM_DEVICE", raising=False)
    dev = runtime.pick_device("cpu")
    assert dev == torch.device("cpu")
    assert runtime.amp_dtype(dev) is None
    ctx = runtime.autocast(dev)
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.float32  # no mixed precision on CPU
    # an explicit bf16 request on CPU is honoured (CPU autocast supports bf16)
    with runtime.autocast(dev, dtype=torch.bfloat16):
        z = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert z.dtype == torch.bfloat16


def test_env_override_and_missing_cuda_is_an_error(monkeypatch):
    monkeypatch.setenv("ENDOFM_DEVICE", "cpu")
    assert runtime.pick_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            runtime.pick_device("cuda")
        monkeypatch.delenv("ENDOFM_DEVICE")
        assert runtime.pick_device().type in ("cpu", "mps")


def test_single_process_fallback_without_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    info = runtime.init_distributed()
    assert info == runtime.DistInfo(rank=0, world_size=1, local_rank=0, is_main=True, backend=None)
    assert not info.distributed
    assert runtime.is_main_process()
    runtime.barrier()  # no-op, must not hang
    assert runtime.all_reduce_mean(3.5) == 3.5
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(runtime.all_reduce_mean(t), t)
    # torchrun with a single process is also treated as single-process
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert runtime.init_distributed().backend is None


def test_seed_everything_repeats_every_generator():
    def draw():
        return (np.random.rand(), torch.rand(3).tolist(), __import__("random").random())

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    assert draw() == a


@pytest.mark.slow  # two fresh interpreters importing torch: seconds idle, close to a minute on a loaded box
def test_two_process_gloo_group(tmp_path):
    """Two real processes with torchrun-style environment variables form a gloo group and average a value."""
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import torch
            from core_model import runtime
            info = runtime.init_distributed()
            assert info.backend == "gloo" and info.world_size == 2, info
            m = runtime.all_reduce_mean(torch.tensor([float(info.rank)]))
            f = runtime.all_reduce_mean(float(info.rank) * 2)
            runtime.barrier()
            print(info.rank, info.is_main, runtime.is_main_process(), float(m), f, flush=True)
            """
        )
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES="")
        procs.append(
            subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        )
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == ["0", "True", "True", "0.5", "1.0"]
    assert outs[1] == ["1", "False", "False", "0.5", "1.0"]


@pytest.mark.gpu
def test_cuda_device_and_mixed_precision(monkeypatch):
    monkeypatch.delenv("ENDOFM_DEVICE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    dev = runtime.pick_device()
    assert dev.type == "cuda" and dev.index == 0
    assert runtime.pick_device("cuda") == dev
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert runtime.amp_dtype(dev) == expected
    with runtime.autocast(dev):
        y = torch.nn.Linear(8, 8).cuda()(torch.randn(4, 8, device=dev))
    assert y.dtype == expected
    with runtime.autocast(dev, enabled=False):
        assert torch.nn.Linear(8, 8).cuda()(torch.randn(4, 8, device=dev)).dtype == torch.float32
