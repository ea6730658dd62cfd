"""Datasets as distributed: zip archives, extracted safely.

Entries under ``__MACOSX/`` and AppleDouble ``._*`` files are skipped; an entry whose path is absolute or climbs out of
the destination (``../``) is malformed input and nothing is extracted.

Each archive is extracted into its own folder ``<work_dir>/<stem>-<first 16 hex digits of the zip's SHA-256>``: two
different archives of the same name never share (or delete) a folder, and extracting the same archive again reuses
the complete folder it already has (videos stored from it keep their frames). Nothing that already exists under
``work_dir`` is ever removed; a failed extraction removes only its own ``.partial`` folder. The declared sizes are
checked against :mod:`endoreview.interchange.limits` (total, ratio, free space) before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from endoreview.interchange import limits
from endoreview.interchange.model import InterchangeError
from endoreview.interchange.util import is_junk

log = logging.getLogger(__name__)


def is_archive(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() == ".zip"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def archive_folder(path: str | os.PathLike, work_dir: str | os.PathLike) -> Path:
    """The folder ``path`` extracts into under ``work_dir``: unique per archive content, never ``.``/``..``."""
    path = Path(path)
    stem = path.stem
    if stem.strip(". ") == "":
        raise InterchangeError(path, f"archive name {path.name!r} has no usable stem; rename the file")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100].lstrip(".") or "_"
    try:
        digest = _digest(path)
    except OSError as e:
        raise InterchangeError(path, f"cannot be read ({e.strerror or e})") from None
    return Path(work_dir) / f"{safe}-{digest}"


def extract_zip(path: str | os.PathLike, work_dir: str | os.PathLike) -> Path:
    """Extract ``path`` into its own folder under ``work_dir`` (see the module docstring) and return that folder.
    Checks every name and the declared sizes before writing anything."""
    path = Path(path)
    dest = archive_folder(path, work_dir)
    if dest.is_dir():
        log.info("%s already extracted to %s", path, dest)
        return dest
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise InterchangeError(path, f"not a readable zip archive ({e})") from None
    except OSError as e:
        raise InterchangeError(path, f"cannot be read ({e.strerror or e})") from None
    with zf:
        members = []
        total = compressed = 0
        for info in zf.infolist():
            name = info.filename.replace("\\", "/")
            if info.is_dir() or is_junk(name):
                continue
            pp = PurePosixPath(name)
            if pp.is_absolute() or ".." in pp.parts or (pp.parts and ":" in pp.parts[0]):
                raise InterchangeError(
                    path, f"archive entry {info.filename!r} escapes the dataset folder", field=info.filename
                )
            members.append((info, pp))
            total += info.file_size
            compressed += info.compress_size
        if not members:
            raise InterchangeError(path, "archive holds no files (besides __MACOSX debris)")
        limits.check_zip(path, total, compressed, dest.parent)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent))
        try:
            for info, pp in members:
                target = tmp.joinpath(*pp.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                # ZipExtFile stops at the declared file_size, so the checked total bounds what is written
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InterchangeError(path, f"archive is damaged ({e})") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            tmp.rename(dest)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # extracted meanwhile by another import: use that one
            if not dest.is_dir():
                raise
    log.info("extracted %d files from %s to %s", len(members), path, dest)
    return dest
