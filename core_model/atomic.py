"""The one atomic file write of the project (torch-free; the app uses it too).

``atomic_write(path, write_fn)`` calls ``write_fn(tmp)`` with a temporary path in the destination's folder, fsyncs
the file, gives it the mode an ordinary ``open()`` would (``0o666`` less the umask, unless ``mode`` says otherwise),
renames it over ``path`` and fsyncs the folder. A crash or an exception at any point leaves either the old file or
the new one, never half a file, and no temporary file behind (an exception removes it; only a hard kill can leave a
hidden ``.<name>.*.tmp`` that the next write ignores).

Any writer that takes a path fits: ``atomic_write(p, lambda tmp: torch.save(obj, tmp))``,
``atomic_write(p, lambda tmp: safetensors.torch.save_file(tensors, tmp))``. ``atomic_write_bytes`` and
``atomic_write_text`` cover the common cases.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike,
    write_fn: Callable[[Path], object],
    *,
    mode: int | None = None,
    keep_suffix: bool = False,
) -> Path:
    """Write ``path`` atomically: ``write_fn(tmp)`` writes a temporary file that then replaces ``path``.

    ``mode``: the file's permission bits (``0o600`` for a private file); default as ``open()`` would create it.
    ``keep_suffix``: the temporary name ends in ``path``'s own suffix (``.tmp.mp4``), for writers that choose the
    format from the file name (PyAV/FFmpeg). The destination's folder is created if missing. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{path.suffix}" if keep_suffix else ".tmp"
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> Path:
    """``atomic_write`` of ``data``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), mode=mode)


def atomic_write_text(
    path: str | os.PathLike, text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> Path:
    """``atomic_write`` of ``text`` (no newline translation: the bytes on disk are ``text.encode(encoding)``)."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)
