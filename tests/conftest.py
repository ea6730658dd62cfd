"""Shared test set-up: every test gets its own user data directory; nothing touches the real one."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One intra-op thread per test process: the suite runs two processes on two cores (pytest -n 2), and oversubscribed
# torch thread pools made model tests about 10x slower on this machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Spinning OpenMP workers steal the other test process's core; passive waiting made small steps ~10x faster here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on a shared 2-core machine, OpenMP threads spinning against other processes make small CPU models about 10x
    slower (measured: 26 s vs 256 s for the heads' overfit test at load 11)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    d = tmp_path_factory.mktemp("endoreview-data")
    monkeypatch.setenv("ENDOREVIEW_DATA_DIR", str(d))
    monkeypatch.delenv("ENDOREVIEW_DB_URL", raising=False)
    yield d


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """The root logger as it was before the test: a command line's ``main()`` called in-process runs
    ``logging.basicConfig``, which binds a handler to the ``sys.stderr`` of that moment (a test's capture, closed
    when the test ends); a later test that logs then printed "--- Logging error ---" and a traceback into its own
    captured stderr (seen once under ``-n 2``: the bad-model CLI test)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing is an install error surfaced elsewhere
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
