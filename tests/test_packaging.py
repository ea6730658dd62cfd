"""The desktop bundle's builder, checked without building the 5 GB folder (CI builds it and runs
``packaging/smoke_test.sh`` on it after the tests): what goes in, the pins, the ELF edits, the launchers and the
installer."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "packaging"
SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))


def _load(name: str):
    sys.path.insert(0, str(PKG))
    try:
        spec = importlib.util.spec_from_file_location(f"_bundle_{name}", PKG / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(PKG))


assemble = _load("assemble")
elf = _load("elf")


def test_the_bundle_carries_the_apps_runtime_closure_and_no_test_or_training_extras():
    need = assemble.dist_closure(SITE, ROOT / "pyproject.toml")
    for name in (
        "torch",
        "pyside6-essentials",
        "sqlalchemy",
        "av",
        "opencv-python-headless",
        "psycopg-binary",
    ):
        assert name in need
    # torch asks for cuda-toolkit[cudart,cublas,…]: the libraries behind those extras must come along, or torch's
    # CUDA libraries cannot load (found: without following extras the bundle lacked libcudart).
    import torch

    if torch.version.cuda:
        assert {"nvidia-cuda-runtime", "nvidia-cublas"} <= set(need)
    for name in ("torchvision", "timm", "triton", "pytest", "ruff", "hypothesis", "endoreview"):
        assert name not in need


def test_a_venv_that_differs_from_the_pins_is_refused(tmp_path):
    need = assemble.dist_closure(SITE, ROOT / "pyproject.toml")
    pins = tmp_path / "constraints.txt"
    pins.write_text(
        (ROOT / "requirements" / "constraints.txt").read_text().replace("torch==", "torch==0.0.1+")
    )
    with pytest.raises(assemble.BuildError, match=r"torch .* \(pinned 0\.0\.1\+"):
        assemble.check_pins(need, pins)
    assert assemble.check_pins(need, ROOT / "requirements" / "constraints.txt")["torch"] == torch_version()


def torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


def test_runpath_is_read_and_rewritten_in_place(tmp_path):
    src = next(SITE.glob("PySide6/Qt/plugins/platforms/libqminimal.so"), None)
    if src is None:
        pytest.skip("no PySide6 platform plugin in this environment")
    so = tmp_path / src.name
    shutil.copy2(src, so)
    before = elf.read_dynamic(so)
    assert before.runpath and "$ORIGIN" in before.runpath
    assert "libQt6Core.so.6" in before.needed
    assert elf.glibc_versions(before.versions)
    old = elf.set_runpath(so, "$ORIGIN", expect_old=before.runpath)
    after = elf.read_dynamic(so)
    assert (old, after.runpath, after.needed) == (before.runpath, "$ORIGIN", before.needed)
    assert so.stat().st_size == src.stat().st_size
    with pytest.raises(ValueError, match="longer"):
        elf.set_runpath(so, "$ORIGIN/" + "x" * 200)


def test_host_provided_libraries_are_the_desktop_stack_not_what_python_needs():
    host = assemble.HOST_PROVIDED
    for name in ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libGL.so.1", "libX11-xcb.so.1", "libxcb.so.1"):
        assert host.match(name), name
    for name in (
        "libssl.so.3",
        "libcrypto.so.3",
        "libsqlite3.so.0",
        "libffi.so.8",
        "libz.so.1",
        "libzstd.so.1",
    ):
        assert not host.match(name), name


def _fake_folder(tmp_path: Path) -> Path:
    """A folder shaped like the bundle whose 'python' prints where it is and what it was asked to run."""
    app = tmp_path / "EndoReview"
    (app / "python").mkdir(parents=True)
    py = app / "python" / "python3.11"
    py.write_text('#!/bin/sh\necho "python=$0 args=$*"\n')
    py.chmod(0o755)
    for name in ("endoreview", "endofm", "install.sh", "uninstall.sh"):
        src = PKG / "launchers" / name if name in ("endoreview", "endofm") else PKG / name
        shutil.copy2(src, app / name)
    shutil.copy2(PKG / "endoreview.desktop", app / "endoreview.desktop")
    return app


def test_launchers_start_the_folders_python_isolated_with_an_empty_path_and_through_a_symlink(tmp_path):
    app = _fake_folder(tmp_path)
    empty = {"PATH": str(tmp_path / "nothing"), "HOME": str(tmp_path)}
    out = subprocess.run([str(app / "endoreview"), "--version"], env=empty, capture_output=True, text=True)
    assert out.stdout.strip() == f"python={app}/python/python3.11 args=-I -s -m endoreview --version", (
        out.stderr
    )
    link = tmp_path / "bin" / "endofm"
    link.parent.mkdir()
    link.symlink_to(app / "endofm")
    out = subprocess.run([str(link), "info"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert out.stdout.strip() == f"python={app}/python/python3.11 args=-I -s -m core_model.cli info", (
        out.stderr
    )


def test_install_and_uninstall_keep_user_data(tmp_path):
    app = _fake_folder(tmp_path)
    home = tmp_path / "home"
    data = home / ".local" / "share" / "EndoReview"
    data.mkdir(parents=True)
    (data / "endoreview.sqlite3").write_bytes(b"labels")
    env = {**os.environ, "HOME": str(home)}
    subprocess.run([str(app / "install.sh")], env=env, check=True, capture_output=True)
    dest = home / ".local" / "opt" / "EndoReview"
    assert (dest / "python" / "python3.11").exists()
    out = subprocess.run(
        [str(home / ".local" / "bin" / "endoreview"), "--demo"], capture_output=True, text=True
    )
    assert out.stdout.strip() == f"python={dest}/python/python3.11 args=-I -s -m endoreview --demo"
    desktop = (home / ".local" / "share" / "applications" / "endoreview.desktop").read_text()
    assert f"{dest}/endoreview" in desktop and "@PREFIX@" not in desktop
    subprocess.run([str(dest / "uninstall.sh")], env=env, check=True, capture_output=True)
    assert not dest.exists() and not (home / ".local" / "bin" / "endoreview").exists()
    assert (data / "endoreview.sqlite3").read_bytes() == b"labels"
