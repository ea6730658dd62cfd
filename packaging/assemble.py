"""Assemble the relocatable EndoReview folder by copying, from the virtual environment the tests ran in.

    <venv>/bin/python packaging/assemble.py --venv <venv> --out dist/EndoReview

What goes in (packaging/README.md explains why this replaced PyInstaller):
  python/python3.11 + python3.11._pth    the venv's base CPython, isolated by the ._pth file (sys.path fixed to the
                                         folder, PYTHON* variables and the user site ignored; children started with
                                         ``sys.executable`` get the same)
  python/lib/libpython3.11.so.1.0        + the shared libraries its extension modules need that a Linux desktop does
                                         not provide (found in the ELF NEEDED entries; glibc and the graphics stack stay
                                         the host's); RUNPATHs rewritten to $ORIGIN-relative
  python/lib/python3.11/                 the standard library (no tests, tkinter, idle, static library)
  python/lib/python3.11/site-packages/   the app's runtime dependency closure, file by file from each distribution's
                                         RECORD in the venv (the pinned versions the tests ran with; checked against
                                         requirements/constraints.txt), minus torchvision/timm/triton, headers and
                                         static libraries
  app/{core_model,endoreview,resources}  the project's tracked files of this commit, compiled
  endoreview, endofm                     launchers (shell scripts next to the folder's python)

Prints one JSON line per stage (seconds, sizes) and ends with a summary line. Standard library only (plus the
venv's ``packaging`` for requirement markers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
import tomllib
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import elf
from hostlibs import HOST_PROVIDED
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Training extras (core_model falls back to pure-torch ops without torchvision) and torch.compile's GPU compiler.
EXCLUDED_DISTS = {"torchvision", "timm", "triton"}
PROJECT = "endoreview"
APP_DIRS = ("core_model", "endoreview", "resources")

STDLIB_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "site-packages",
    "__phello__",
}
DYNLOAD_SKIP = re.compile(
    r"^(_tkinter|_test\w*|_ctypes_test|xxlimited\w*|_xxtestfuzz|_curses\w*|readline|nis)\."
)
# Left out of the wheels: headers, static libraries, type stubs; Qt's QML, designer and build tools (the app is
# Qt Widgets only), Qt's SQL drivers (the app's database goes through SQLAlchemy).
SITE_SKIP = re.compile(
    r"(\.(a|h|hpp|cuh|pyi)$|\.opt-[12]\.pyc$|^torch/include/|^torch/share/cmake/|^nvidia/[^/]+/include/"
    r"|^PySide6/(include|typesystems|glue|doc|scripts)/"
    r"|^PySide6/(assistant|designer|linguist|lrelease|lupdate|qmlformat|qmllint|qmlls|svgtoqml)$"
    r"|^PySide6/Qt/(qml|libexec|metatypes)/|^PySide6/Qt/plugins/(designer|qmltooling|qmllint|sqldrivers)/)"
)
# Plugins loaded only on request whose libraries a site installs itself: NVSHMEM's multi-node transports (UCX,
# libfabric, MPI, PMIx, Mellanox verbs) and cuFile's GPUDirect-over-RDMA (InfiniBand verbs).
OPTIONAL_PLUGINS = re.compile(
    r"/nvidia/(nvshmem/lib/nvshmem_(transport|bootstrap)_\w+|cu13/lib/libcufile_rdma)\.so"
)


def say(**event) -> None:
    print(json.dumps(event), flush=True)


class BuildError(RuntimeError):
    pass


def du_mb(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.stat(p).st_size
    return round(total / 2**20)


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        target = os.readlink(src)
        if not os.path.isabs(target):
            dst.symlink_to(target)
            return
    shutil.copy2(src, dst)  # keeps mtimes: the copied .pyc files stay valid


# --- the interpreter --------------------------------------------------------------------------------------------------


def copy_interpreter(base: Path, py: Path) -> list[Path]:
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = base / "bin" / ver
    lib = base / "lib"
    libpython = lib / sysconfig.get_config_var("INSTSONAME")
    if not libpython.exists():
        raise BuildError(
            f"{libpython}: the base Python is not a shared-library build (needs --enable-shared)"
        )
    copy_file(exe, py / ver)
    copy_file(libpython, py / "lib" / libpython.name)
    src_std = lib / ver
    dst_std = py / "lib" / ver
    for dirpath, dirs, files in os.walk(src_std):
        rel = Path(dirpath).relative_to(src_std)
        dirs[:] = [
            d
            for d in dirs
            if not (rel == Path(".") and d in STDLIB_SKIP_DIRS) and not d.startswith("config-")
        ]
        dirs[:] = [d for d in dirs if d not in {"test", "tests", "idle_test"}]
        for f in files:
            if f.endswith((".opt-1.pyc", ".opt-2.pyc", ".exe")):
                continue
            if rel == Path("lib-dynload") and DYNLOAD_SKIP.match(f):
                continue
            copy_file(Path(dirpath) / f, dst_std / rel / f)
    # The folder's own sys.path, for this interpreter and every child started with sys.executable: isolated mode
    # (PYTHON* variables ignored) and no `site` (an "import site" line would add the user site and run its
    # usercustomize even in isolated mode: check_isolation.py catches that).
    (py / f"{ver}._pth").write_text(f"lib/{ver}\nlib/{ver}/lib-dynload\nlib/{ver}/site-packages\n../app\n")
    # RUNPATHs pointed at the build machine's Python (e.g. /root/.pyenv/versions/3.11.7/lib): make them relative.
    old = str(lib)
    patched = []
    for path, new in [(py / ver, "$ORIGIN/lib"), (py / "lib" / libpython.name, "$ORIGIN")] + [
        (p, "$ORIGIN/../..") for p in sorted((dst_std / "lib-dynload").glob("*.so"))
    ]:
        d = elf.read_dynamic(path)
        if d.runpath is not None:
            if d.runpath != old:
                raise BuildError(f"{path}: unexpected RUNPATH {d.runpath!r} (expected {old!r} or none)")
            elf.set_runpath(path, new)
            patched.append(path)
    return patched


# --- the wheels ---------------------------------------------------------------------------------------------------------


def dist_closure(site: Path, pyproject: Path) -> dict[str, metadata.Distribution]:
    """The distributions the app needs at run time: this commit's pyproject dependencies and what they require,
    transitively (extras followed), minus EXCLUDED_DISTS; each must be installed in ``site``."""
    dists = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    roots = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    need: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [
        ("", "")
    ]  # (distribution, extra): torch asks for cuda-toolkit[cublas,cudart,...]; "" is the project
    while todo:
        name, extra = todo.pop()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        env = {**default_environment(), "extra": extra}
        for spec in roots if name == "" else dists[name].requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = canonicalize_name(req.name)
            if dep in EXCLUDED_DISTS:
                continue
            if dep not in dists:
                raise BuildError(
                    f"{site}: {name or PROJECT} needs {spec!r}, which is not installed (make venv)"
                )
            need[dep] = dists[dep]
            todo += [(dep, "")] + [(dep, canonicalize_name(x)) for x in req.extras]
    return need


def check_pins(need: dict[str, metadata.Distribution], constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            pins[canonicalize_name(name)] = ver.strip()
    wrong = [
        f"{n} {d.version} (pinned {pins[n]})" for n, d in need.items() if n in pins and d.version != pins[n]
    ]
    if wrong:
        raise BuildError(f"{constraints}: the environment differs from the pins: {', '.join(sorted(wrong))}")
    if "torch" not in need:
        raise BuildError("torch is not in the app's dependencies")
    return {n: d.version for n, d in sorted(need.items())}


def copy_dists(need: dict[str, metadata.Distribution], site: Path, dst: Path) -> int:
    n = 0
    for name, dist in need.items():
        files = dist.files
        if files is None:
            raise BuildError(f"{name}: no RECORD in {site}; reinstall it with pip")
        for f in files:
            rel = f.as_posix()
            if rel.startswith("../") or SITE_SKIP.search(rel):
                continue
            src = site / rel
            if not src.exists() and not src.is_symlink():
                if rel.endswith(".pyc"):
                    continue  # pip lists the .pyc it compiled; a missing one is only recompiled, never needed
                raise BuildError(f"{src}: listed in {name}'s RECORD but missing (damaged environment)")
            copy_file(src, dst / rel)
            n += 1
    return n


# --- the project --------------------------------------------------------------------------------------------------------


def copy_project(root: Path, app: Path) -> int:
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--", *APP_DIRS], capture_output=True, check=True
    ).stdout
    n = 0
    for rel in out.decode().split("\0"):
        if rel and (root / rel).is_file():
            copy_file(root / rel, app / rel)
            n += 1
    shutil.copy2(root / "packaging" / "LICENSES.md", app / "resources" / "LICENSES.md")
    return n


# --- checks ---------------------------------------------------------------------------------------------------------------


def elf_files(top: Path):
    for dirpath, _dirs, files in os.walk(top):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink() or not (".so" in f or os.access(p, os.X_OK)):
                continue
            if elf.is_elf(p):
                yield p


def system_libraries() -> dict[str, str]:
    """soname -> path of this machine's libraries for this architecture (ldconfig's cache)."""
    arch = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(os.uname().machine, "")
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False).stdout
    libs: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and arch in m.group(2):
            libs.setdefault(m.group(1), m.group(3))
    return libs


def _runpath_dirs(p: Path, d: elf.Dynamic) -> list[Path]:
    return [
        Path(os.path.normpath(part.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", str(p.parent))))
        for part in (d.runpath or "").split(":")
        if part
    ]


def resolve_libraries(top: Path) -> dict:
    """Make every bundled binary's NEEDED libraries resolvable from inside the folder, and prove it.

    A NEEDED library is resolved when it is in one of the binary's RUNPATH directories, or next to it (auditwheel's
    layout: the parent library that has the RUNPATH loads it first), or host-provided (HOST_PROVIDED). Anything else
    is copied from this machine (ldconfig) into the binary's first RUNPATH directory, e.g. Qt's libzstd, the
    standard library's libssl/libsqlite3/libffi. RUNPATH entries outside the folder (a wheel's build directory) are
    removed. Fails listing every library that could not be resolved.
    """
    system = system_libraries()
    vendored: dict[str, str] = {}
    sanitized: list[str] = []
    optional: set[str] = set()
    dropped: list[str] = []
    for _round in range(6):
        infos = []
        for p in elf_files(top):
            try:
                d = elf.read_dynamic(p)
            except elf.NotElf:
                continue
            if d.runpath:
                parts = d.runpath.split(":")
                inside = [x for x in parts if x.replace("${ORIGIN}", "$ORIGIN").startswith("$ORIGIN")]
                if len(inside) != len(parts):  # e.g. nvshmem's '/data/tmp/openmpi_install/lib:${ORIGIN}'
                    elf.set_runpath(p, ":".join(inside))
                    sanitized.append(f"{p.relative_to(top)}: {d.runpath}")
                    d.runpath = ":".join(inside)
            infos.append((p, d))
        added = False
        missing: list[str] = []
        for p, d in infos:
            rel = str(p.relative_to(top))
            dirs = _runpath_dirs(p, d)
            for need in d.needed:
                if (
                    HOST_PROVIDED.match(need)
                    or (p.parent / need).exists()
                    or any((x / need).exists() for x in dirs)
                ):
                    continue
                if OPTIONAL_PLUGINS.search(rel):
                    optional.add(need)
                    continue
                if "/PySide6/Qt/plugins/" in rel and re.match(r"libQt6\w+\.so", need):
                    # A plugin of a Qt module that PySide6-Essentials does not ship (virtual keyboard, PDF): Qt
                    # skips it at run time; it is left out instead of carrying a plugin that cannot load.
                    if p.exists():
                        p.unlink()
                        dropped.append(rel)
                    continue
                if need not in system:
                    missing.append(f"{rel} needs {need}")
                    continue
                dest = dirs[0] if dirs else p.parent
                if top not in dest.parents:
                    raise BuildError(f"{p}: RUNPATH directory {dest} is outside the folder")
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(system[need]), dest / need)
                vendored[need] = str(dest.relative_to(top))
                added = True
        if missing:
            raise BuildError(
                "libraries neither in the folder, nor on this machine, nor provided by every Linux desktop: "
                + "; ".join(missing)
            )
        if not added:
            break
    glibc: tuple[int, ...] = (2, 0)
    cxx = []
    for _p, d in infos:
        for v in elf.glibc_versions(d.versions):
            glibc = max(glibc, v)
        cxx += [v for v in d.versions if v.startswith("GLIBCXX_")]
    cxx_max = max(cxx, key=lambda v: tuple(int(x) for x in re.findall(r"\d+", v)), default="")
    return {
        "elf_files": len(infos),
        "glibc": "GLIBC_" + ".".join(map(str, glibc)),
        "glibcxx": cxx_max,
        "vendored": vendored,
        "runpaths_outside_removed": sanitized,
        "optional_not_bundled": sorted(optional),
        "qt_plugins_left_out": dropped,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out: Path = args.out.resolve()
    root: Path = args.root.resolve()
    venv: Path = args.venv.resolve()
    if Path(sys.prefix).resolve() != venv:
        raise BuildError(
            f"run this script with {venv}/bin/python (it reads that environment), not {sys.executable}"
        )
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / ver / "site-packages"
    base = Path(sys.base_prefix).resolve()
    if out.exists():
        shutil.rmtree(out)
    py = out / "python"
    (py / "lib").mkdir(parents=True)

    def stage(name: str, t: float, **kw) -> float:
        now = time.perf_counter()
        say(event="stage", stage=name, seconds=round(now - t, 1), **kw)
        return now

    t = time.perf_counter()
    need = dist_closure(site, root / "pyproject.toml")
    versions = check_pins(need, root / "requirements" / "constraints.txt")
    t = stage("closure", t, distributions=len(need), torch=versions["torch"])

    patched = copy_interpreter(base, py)
    t = stage("interpreter", t, base=str(base), runpaths_rewritten=len(patched))

    n = copy_dists(need, site, py / "lib" / ver / "site-packages")
    t = stage("site-packages", t, files=n)

    n = copy_project(root, out / "app")
    pkg = root / "packaging"
    for name in ("endoreview", "endofm"):
        shutil.copy2(pkg / "launchers" / name, out / name)
        (out / name).chmod(0o755)
    for src, dst in [
        ("endoreview.desktop", "endoreview.desktop"),
        ("install.sh", "install.sh"),
        ("uninstall.sh", "uninstall.sh"),
        ("README.md", "INSTALL.md"),
        ("LICENSES.md", "LICENSES.md"),
    ]:
        shutil.copy2(pkg / src, out / dst)
    for s in ("install.sh", "uninstall.sh"):
        (out / s).chmod((out / s).stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    # Compile the project with the folder's own interpreter: the first proof that it runs from where it is.
    subprocess.run(
        [str(py / ver), "-I", "-m", "compileall", "-q", "-j", "0", str(out / "app")],
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    t = stage("app", t, files=n)

    info = resolve_libraries(out)
    (out / "GLIBC_REQUIRED").write_text(info["glibc"] + "\n")
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    build_info = {
        "commit": commit.strip(),
        "python": sys.version.split()[0],
        "glibc_required": info["glibc"],
        "libstdcxx_required": info["glibcxx"],
        "excluded": sorted(EXCLUDED_DISTS),
        "versions": versions,
    }
    (out / "BUILD_INFO.json").write_text(json.dumps(build_info, indent=1) + "\n")
    t = stage("checks", t, **info)
    say(
        event="assembled",
        folder=str(out),
        bundle_mb=du_mb(out),
        seconds=round(time.perf_counter() - t0, 1),
        torch=versions["torch"],
        glibc_required=info["glibc"],
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildError as e:
        say(event="error", message=str(e))
        sys.exit(1)
