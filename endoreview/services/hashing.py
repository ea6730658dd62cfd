"""Content hashes that recognise a video after it was moved or renamed, without reading whole files.

``content_hash(path)`` = BLAKE2b-160 over the file size and three 1 MiB samples (the first, the middle and the
last MiB; the whole file when it is under 3 MiB), written ``"p1:<hex>"`` (``p1`` = partial hash, scheme 1). Two
different recordings practically never share size *and* those 3 MiB (container headers, timestamps and encoder
state differ), and hashing costs three reads even for a 20 GB file. For an image-sequence folder the hash covers
the sorted file names and sizes plus the partial hash of its first, middle and last image (``"f1:<hex>"``).
"""

from __future__ import annotations

import hashlib
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


def content_hash(path: str | os.PathLike) -> str:
    """The partial content hash of a video file or image-sequence folder (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        images = sorted(x for x in p.iterdir() if x.suffix.lower() in IMAGE_SUFFIXES and x.is_file())
        h = hashlib.blake2b(digest_size=20)
        for x in images:
            h.update(f"{x.name}\0{x.stat().st_size}\n".encode())
        if images:
            for x in {images[0], images[len(images) // 2], images[-1]}:
                h.update(_file_digest(x))
        return "f1:" + h.hexdigest()
    return "p1:" + _file_digest(p).hex()
