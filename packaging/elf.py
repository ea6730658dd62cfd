"""The little of ELF the bundle builder needs: a shared object's NEEDED libraries, its SONAME and RUNPATH, the glibc
symbol versions it references, and rewriting its RUNPATH in place (to a string no longer than the old one).

Standard library only (no patchelf on the build machine); 64-bit little-endian ELF (Linux x86_64 / aarch64).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFE, 0x6FFFFFFF


class NotElf(ValueError):
    pass


@dataclass
class Dynamic:
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    runpath: str | None = None  # DT_RUNPATH, or DT_RPATH when there is no RUNPATH
    runpath_offset: int | None = None  # file offset of the runpath string
    versions: set[str] = field(default_factory=set)  # e.g. {"GLIBC_2.17", "GLIBCXX_3.4.29"}


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _cstr(buf, off: int) -> str:
    end = buf.find(b"\0", off)
    return bytes(buf[off:end]).decode("utf-8", "replace")


def read_dynamic(path: Path) -> Dynamic:
    """Parse the dynamic section of ``path``; raises NotElf for anything that is not a 64-bit LE shared object."""
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as e:  # empty file
            raise NotElf(f"{path}: empty") from e
    try:
        return _parse(buf, path)
    finally:
        buf.close()


def _parse(buf, path: Path) -> Dynamic:
    if buf[:4] != b"\x7fELF" or buf[4] != 2 or buf[5] != 1:
        raise NotElf(f"{path}: not a 64-bit little-endian ELF file")
    phoff = struct.unpack_from("<Q", buf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", buf, 0x36)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dyn_off = dyn_size = None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", buf, phoff + i * phentsize
        )
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_DYNAMIC:
            dyn_off, dyn_size = p_offset, p_filesz
    out = Dynamic()
    if dyn_off is None:
        return out  # static executable or object file: nothing to resolve

    def to_off(vaddr: int) -> int:
        for v, o, sz in loads:
            if v <= vaddr < v + sz:
                return vaddr - v + o
        raise NotElf(f"{path}: address {vaddr:#x} outside every loaded segment")

    entries = []
    for off in range(dyn_off, dyn_off + dyn_size, 16):
        tag, val = struct.unpack_from("<qQ", buf, off)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    tags = dict(entries)
    if DT_STRTAB not in tags:
        return out
    strtab = to_off(tags[DT_STRTAB])
    rpath = runpath = None
    for tag, val in entries:
        if tag == DT_NEEDED:
            out.needed.append(_cstr(buf, strtab + val))
        elif tag == DT_SONAME:
            out.soname = _cstr(buf, strtab + val)
        elif tag == DT_RUNPATH:
            runpath = strtab + val
        elif tag == DT_RPATH:
            rpath = strtab + val
    chosen = runpath if runpath is not None else rpath
    if chosen is not None:
        out.runpath_offset = chosen
        out.runpath = _cstr(buf, chosen)
    if DT_VERNEED in tags:
        off = to_off(tags[DT_VERNEED])
        for _ in range(tags.get(DT_VERNEEDNUM, 0)):
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", buf, off)
            a = off + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", buf, a)
                out.versions.add(_cstr(buf, strtab + name))
                if not anext:
                    break
                a += anext
            if not nxt:
                break
            off += nxt
    return out


def set_runpath(path: Path, new: str, expect_old: str | None = None) -> str:
    """Overwrite the RUNPATH (or RPATH) string of ``path`` in place with ``new`` (NUL-padded). Returns the old value.

    The new string must not be longer than the old one: the string table is not grown (what patchelf would do).
    """
    dyn = read_dynamic(path)
    if dyn.runpath is None or dyn.runpath_offset is None:
        raise ValueError(f"{path}: has no RUNPATH to rewrite")
    if expect_old is not None and dyn.runpath != expect_old:
        raise ValueError(f"{path}: RUNPATH is {dyn.runpath!r}, expected {expect_old!r}")
    old = dyn.runpath.encode()
    raw = new.encode()
    if len(raw) > len(old):
        raise ValueError(f"{path}: new RUNPATH {new!r} is longer than the old {dyn.runpath!r}")
    with open(path, "r+b") as f:
        f.seek(dyn.runpath_offset)
        f.write(raw + b"\0" * (len(old) - len(raw)))
    return dyn.runpath


def glibc_versions(versions: set[str]) -> list[tuple[int, ...]]:
    out = []
    for v in versions:
        if v.startswith("GLIBC_") and v[6:7].isdigit():
            out.append(tuple(int(x) for x in v[6:].split(".") if x.isdigit()))
    return out
