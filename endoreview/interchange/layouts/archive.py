"""Datasets as distributed: zip archives, extracted safely.

Entries under ``__MACOSX/`` and AppleDouble ``._*`` files are skipped; an entry whose path is absolute or climbs out of
the destination (``../``) is malformed input and nothing is extracted.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from endoreview.interchange.model import InterchangeError
from endoreview.interchange.util import is_junk

log = logging.getLogger(__name__)


def is_archive(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() == ".zip"


def extract_zip(path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``path`` into ``dest`` (created). Returns ``dest``. Checks every name before writing anything."""
    path, dest = Path(path), Path(dest)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise InterchangeError(path, f"not a readable zip archive ({e})") from None
    except OSError as e:
        raise InterchangeError(path, f"cannot be read ({e.strerror or e})") from None
    with zf:
        members = []
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
        if not members:
            raise InterchangeError(path, "archive holds no files (besides __MACOSX debris)")
        tmp = dest.with_name(dest.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            for info, pp in members:
                target = tmp.joinpath(*pp.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InterchangeError(path, f"archive is damaged ({e})") from None
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    log.info("extracted %d files from %s to %s", len(members), path, dest)
    return dest
