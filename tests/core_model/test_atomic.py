"""The one atomic write: a failed or killed write never leaves half a file, and the old file survives."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from core_model.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "run.json"
    atomic_write_text(p, "first")
    atomic_write_text(p, "second ü")
    assert p.read_text(encoding="utf-8") == "second ü"
    assert _leftovers(p.parent) == []


def test_failing_writer_keeps_the_old_file(tmp_path):
    p = tmp_path / "checkpoint.pth"
    atomic_write_bytes(p, b"old checkpoint")

    def half_then_fail(tmp):
        tmp.write_bytes(b"half a ch")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, half_then_fail)
    assert p.read_bytes() == b"old checkpoint"
    assert _leftovers(tmp_path) == []


def test_killed_writer_keeps_the_old_file(tmp_path):
    """A process killed in the middle of a write (power cut, OOM killer) leaves the previous file readable."""
    p = tmp_path / "checkpoint.pth"
    atomic_write_bytes(p, b"old checkpoint")
    child = textwrap.dedent(
        f"""
        import os
        from core_model.atomic import atomic_write
        def write(tmp):
            tmp.write_bytes(b"half a ch")
            os._exit(9)
        atomic_write({str(p)!r}, write)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], env=os.environ.copy())
    assert proc.returncode == 9
    assert p.read_bytes() == b"old checkpoint"


def test_mode_follows_umask_by_default_and_can_be_private(tmp_path):
    umask = os.umask(0o022)
    try:
        shared = atomic_write_text(tmp_path / "model.json", "{}")
        private = atomic_write_text(tmp_path / "secret.json", "{}", mode=0o600)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_torch_save_through_the_callback(tmp_path):
    torch = pytest.importorskip("torch")
    p = atomic_write(tmp_path / "w.pth", lambda tmp: torch.save({"w": torch.arange(3)}, tmp))
    assert torch.load(p, weights_only=True)["w"].tolist() == [0, 1, 2]


def test_atomic_module_is_torch_free():
    code = "import sys, core_model.atomic; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.stdout.strip() == "False", out.stderr
