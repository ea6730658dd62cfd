"""Content hashes that recognise a video after it was moved or renamed, without reading whole files.

``content_hash(path)`` = BLAKE2b-160 over the file size and three 1 MiB samples (the first, the middle and the
last MiB; the whole file when it is under 3 MiB), written ``"p1:<hex>"`` (``p1`` = partial hash, scheme 1). Two
different recordings practically never share size *and* those 3 MiB (container headers, timestamps and encoder
state differ), and hashing costs three reads even for a 20 GB file. For an image-sequence folder the hash covers
the sorted file names and sizes plus the partial hash of its first, middle and last image, in that order
(``"f2:<hex>"``).

Scheme ``f1`` (before 2026-12) hashed those three images in the iteration order of a Python ``set``, which follows the
per-process hash seed: one folder gave different hashes in different processes, so re-importing duplicated videos
and relinking a moved folder failed. :func:`legacy_folder_hashes` lists every ``f1`` value a folder can have had, so a
stored ``f1`` hash is still recognised and is rewritten to ``f2`` when its folder is seen
(:meth:`endoreview.services.library.LibraryService.migrate_folder_hashes`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

CHUNK = 1 << 20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=20)
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= 3 * CHUNK:
            h.update(f.read())
        else:
            for offset in (0, size // 2 - CHUNK // 2, size - CHUNK):
                f.seek(offset)
                h.update(f.read(CHUNK))
    return h.digest()


def _images(p: Path) -> list[Path]:
    return sorted(x for x in p.iterdir() if x.suffix.lower() in IMAGE_SUFFIXES and x.is_file())


def _listing_hash(images: list[Path]):
    h = hashlib.blake2b(digest_size=20)
    for x in images:
        h.update(f"{x.name}\0{x.stat().st_size}\n".encode())
    return h


def _samples(images: list[Path]) -> list[Path]:
    """First, middle and last image, each once, in folder order."""
    if not images:
        return []
    idx = sorted({0, len(images) // 2, len(images) - 1})
    return [images[i] for i in idx]


def content_hash(path: str | os.PathLike) -> str:
    """The partial content hash of a video file or image-sequence folder (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        images = _images(p)
        h = _listing_hash(images)
        for x in _samples(images):
            h.update(_file_digest(x))
        return "f2:" + h.hexdigest()
    return "p1:" + _file_digest(p).hex()


def legacy_folder_hashes(path: str | os.PathLike) -> set[str]:
    """Every scheme-``f1`` hash a process could have stored for this image-sequence folder (empty for a file)."""
    p = Path(path)
    if not p.is_dir():
        return set()
    images = _images(p)
    digests = [_file_digest(x) for x in _samples(images)]
    out = set()
    for order in itertools.permutations(digests):
        h = _listing_hash(images)
        for d in order:
            h.update(d)
        out.add("f1:" + h.hexdigest())
    return out
