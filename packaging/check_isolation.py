"""Run by ``smoke_test.sh`` with the BUNDLED interpreter: proves the folder uses nothing of the machine's Python.

    <folder>/python/python3.11 packaging/check_isolation.py

Imports everything the app loads (the standard library's C extensions, torch, Qt with a window, OpenCV, PyAV,
decord, SQLAlchemy with SQLite and psycopg, …), then checks that sys.prefix and every sys.path entry are inside the
folder, that every imported module and every shared library mapped into the process (/proc/self/maps) comes from the
folder or is one the host must provide (packaging/hostlibs.py), and that a child started the way the app starts its
jobs (``sys.executable -m …``, no flags) is just as isolated. smoke_test.sh runs it with PYTHONPATH, PYTHONHOME and a
user site that would shadow torch, so a leak fails here. Prints one JSON line; exits 1 listing every leak.
"""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

FOLDER = Path(sys.executable).resolve().parent.parent
HERE = Path(__file__).resolve().parent
HOST_PROVIDED = runpy.run_path(str(HERE / "hostlibs.py"))["HOST_PROVIDED"]
read_dynamic = runpy.run_path(str(HERE / "elf.py"))["read_dynamic"]

STDLIB_C = [
    "ssl",
    "hashlib",
    "sqlite3",
    "lzma",
    "bz2",
    "zlib",
    "ctypes",
    "uuid",
    "pyexpat",
    "decimal",
    "json",
]
APP = [
    "numpy",
    "torch",
    "cv2",
    "av",
    "PIL.Image",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pycocotools.mask",
    "pydicom",
    "yaml",
    "safetensors.torch",
    "einops",
    "pyqtgraph",
    "PySide6.QtWidgets",
    "PySide6.QtSvg",
    "endoreview.ui.app",
    "core_model.inference",
]
OPTIONAL = ["decord"]  # no wheel on every platform; the reader falls back to PyAV


def inside(p: str | os.PathLike) -> bool:
    try:
        return Path(p).resolve().is_relative_to(FOLDER)
    except OSError:
        return False


def main() -> int:
    leaks: list[str] = []
    import importlib

    for name in STDLIB_C + APP + OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError as e:
            if name not in OPTIONAL:
                leaks.append(f"import {name} failed: {e}")
    import sqlalchemy

    with sqlalchemy.create_engine("sqlite://").connect() as c:  # the SQLite the store uses
        c.exec_driver_sql("select sqlite_version()").scalar()
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([sys.argv[0], "-platform", "offscreen"])
    w = QLabel("EndoReview")
    w.show()
    app.processEvents()

    for what, value in [
        ("sys.prefix", sys.prefix),
        ("sys.exec_prefix", sys.exec_prefix),
        ("sys.base_prefix", sys.base_prefix),
    ]:
        if not inside(value):
            leaks.append(f"{what} = {value}")
    leaks += [f"sys.path entry {p}" for p in sys.path if not inside(p or ".")]
    if not (
        sys.flags.isolated and sys.flags.ignore_environment and (sys.flags.no_site or sys.flags.no_user_site)
    ):
        leaks.append(f"not isolated: {sys.flags}")
    for name, mod in list(sys.modules.items()):
        f = getattr(
            mod, "__file__", None
        )  # absolute paths only: torch.ops / shiboken's embedded modules have none
        if f and os.path.isabs(f) and not inside(f) and Path(f).resolve() != Path(__file__).resolve():
            leaks.append(f"module {name} from {f}")
    mapped = set()
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                mapped.add(parts[5].strip())
    # Outside the folder only host-provided libraries and what they in turn load (fontconfig's libexpat, …).
    outside = {p: read_dynamic(p) for p in mapped if not inside(p)}
    host = {p for p, d in outside.items() if HOST_PROVIDED.match(d.soname or os.path.basename(p))}
    grew = True
    while grew:
        wanted = {n for p in host for n in outside[p].needed}
        more = {
            p for p, d in outside.items() if p not in host and (d.soname or os.path.basename(p)) in wanted
        }
        host |= more
        grew = bool(more)
    leaks += [f"library {p}" for p in sorted(outside) if p not in host]

    # A child started as the app starts its jobs: [sys.executable, "-m", module], environment inherited.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, torch; print(json.dumps([sys.path, torch.__file__, sys.flags.isolated and sys.flags.no_site]))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        leaks.append(f"child failed: {out.stderr[-500:]}")
    else:
        child_path, child_torch, child_isolated = json.loads(out.stdout.splitlines()[-1])
        leaks += [f"child sys.path entry {p}" for p in child_path if not inside(p or ".")]
        if not inside(child_torch) or not child_isolated:
            leaks.append(f"child imported torch from {child_torch} (isolated={child_isolated})")
    import torch

    print(
        json.dumps(
            {
                "event": "isolation",
                "ok": not leaks,
                "folder": str(FOLDER),
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "torch_cuda": torch.version.cuda,
                "cuda_available": torch.cuda.is_available(),
                "libraries_in_folder": sum(1 for p in mapped if inside(p)),
                "host_libraries": sorted(os.path.basename(p) for p in host),
                "leaks": leaks,
            }
        ),
        flush=True,
    )
    return 0 if not leaks else 1


if __name__ == "__main__":
    sys.exit(main())
