"""Issue 19 row 10: ``models register`` refuses links (never copies what they point to) and leaves no .partial."""

from __future__ import annotations

import os

import pytest

from endoreview.services.registry import RegistryError, RegistryService
from endoreview.store import Store
from tests.services.test_registry import fake_model_dir


@pytest.fixture
def reg(tmp_path):
    store = Store.open(str(tmp_path / "db.sqlite3"), reviewer="tester")
    yield RegistryService(store)
    store.close()


def _registry_entries(reg):
    return sorted(p.name for p in reg.root.iterdir()) if reg.root.exists() else []


@pytest.mark.parametrize("link_to", ["dir", "file"])
def test_register_refuses_a_model_folder_with_a_symlink(reg, tmp_path, link_to):
    secret = tmp_path / "home"
    (secret / "private").mkdir(parents=True)
    (secret / "private" / "notes.txt").write_text("patient list")
    src = fake_model_dir(tmp_path / "run" / "model")
    target = secret if link_to == "dir" else secret / "private" / "notes.txt"
    os.symlink(target, src / "extra")
    before = _registry_entries(reg)
    with pytest.raises(RegistryError, match="symbolic link") as e:
        reg.register(src, name="linked")
    assert "extra" in str(e.value)
    assert _registry_entries(reg) == before  # nothing copied, no .partial folder
    assert reg.store.find_model_version("linked") is None


def test_failed_copy_leaves_no_partial_folder(reg, tmp_path, monkeypatch):
    import shutil

    src = fake_model_dir(tmp_path / "run" / "model")
    real = shutil.copytree

    def fail_late(s, d, *a, **k):
        real(s, d, *a, **k)  # everything written, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", fail_late)
    with pytest.raises(RegistryError, match="No space left"):
        reg.register(src, name="full-disk")
    assert not any(n.endswith(".partial") or n.startswith("full-disk") for n in _registry_entries(reg))
