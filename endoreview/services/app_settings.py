"""The workstation's settings, as plain Python (no Qt): reviewer identity, database location, cache size limit,
GPU/CPU choice and the default label set, kept in ``<user data>/settings.json``.

A PostgreSQL password never goes into that file: :func:`save_settings` refuses a URL carrying one, and
:func:`store_pg_password` puts it in the operating system's keyring (when the ``keyring`` package is installed) or
in ``~/.pgpass`` (mode 0600, the file libpq and psycopg read by themselves).

```python
s = load_settings(); s = replace(s, reviewer="dr.lee", cache_limit_mb=4096); save_settings(s)
url = database_url(s)            # sqlite:///… or postgresql+psycopg://user@host/db (password from keyring/.pgpass)
where = store_pg_password("postgresql://user@db.hospital:5432/endo", "secret")   # "keyring" | "~/.pgpass"
cache_size(); clear_caches()     # bytes used by proxies/thumbnails; remove them (they are rebuilt on demand)
```
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
KEYRING_SERVICE = "EndoReview PostgreSQL"


class SettingsError(ValueError):
    """Settings that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    reviewer: str = ""
    db_kind: str = "sqlite"  # sqlite | postgresql
    sqlite_path: str = ""  # "" = <user data>/endoreview.sqlite3
    pg_url: str = ""  # postgresql://user@host:port/db — never with a password
    cache_limit_mb: int = 2048
    device: str = "auto"
    default_label_set: str = ""
    text_size: int = (
        0  # percent of the desktop's font size; 0 = automatic for the screen (endoreview.ui.scale)
    )


def settings_path() -> Path:
    from endoreview.paths import data_dir

    return data_dir() / "settings.json"


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The saved settings (defaults where missing); an unreadable file gives the defaults and a warning."""
    p = Path(path) if path else settings_path()
    if not p.is_file():
        return Settings()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable settings (%s); using defaults", p, exc)
        return Settings()
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in data.items() if k in known})


def validate(s: Settings) -> None:
    if s.db_kind not in ("sqlite", "postgresql"):
        raise SettingsError(f"database kind must be sqlite or postgresql, not {s.db_kind!r}")
    if s.device not in DEVICES:
        raise SettingsError(f"device must be one of {', '.join(DEVICES)}, not {s.device!r}")
    if s.cache_limit_mb < 64:
        raise SettingsError("the cache limit must be at least 64 MB")
    if s.text_size != 0 and not 80 <= s.text_size <= 200:
        raise SettingsError(f"the text size must be automatic or 80-200 %, not {s.text_size!r}")
    if s.db_kind == "postgresql":
        parts = urlsplit(s.pg_url)
        if not parts.scheme.startswith("postgresql") or not parts.hostname or not parts.path.strip("/"):
            raise SettingsError(
                f"{s.pg_url!r} is not a PostgreSQL URL (postgresql://user@host:5432/database)"
            )
        if parts.password:
            raise SettingsError("the PostgreSQL URL must not contain a password; it is stored separately")


def save_settings(s: Settings, path: str | os.PathLike | None = None) -> Path:
    """Validate and write atomically."""
    validate(s)
    from core_model.atomic import atomic_write_text

    return atomic_write_text(Path(path) if path else settings_path(), json.dumps(asdict(s), indent=2))


def split_password(url: str) -> tuple[str, str]:
    """(URL without the password, password) of a database URL."""
    parts = urlsplit(url)
    if not parts.password:
        return url, ""
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl(), parts.password


def store_pg_password(url: str, password: str, pgpass: str | os.PathLike | None = None) -> str:
    """Keep ``password`` for ``url`` in the OS keyring, else ``~/.pgpass``; returns where it went."""
    parts = urlsplit(url)
    if not parts.hostname or not parts.username:
        raise SettingsError(f"{url!r}: a PostgreSQL URL needs a user and a host to store a password for")
    clean, _ = split_password(url)
    if pgpass is None:
        try:
            import keyring

            keyring.set_password(KEYRING_SERVICE, clean, password)
            return "keyring"
        except Exception:  # no keyring package or no backend: fall back to ~/.pgpass
            log.info("no usable OS keyring; writing ~/.pgpass")
    p = Path(pgpass) if pgpass is not None else Path.home() / ".pgpass"

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace(":", "\\:")

    key = ":".join(
        esc(x) for x in (parts.hostname, str(parts.port or 5432), parts.path.strip("/"), parts.username)
    )
    lines = p.read_text(encoding="utf-8").splitlines() if p.is_file() else []
    lines = [ln for ln in lines if not ln.startswith(key + ":")] + [f"{key}:{esc(password)}"]
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(p, 0o600)
    return str(p)


def database_url(s: Settings) -> str:
    """The URL to open (PostgreSQL: the password from the keyring when there is one, else libpq's ~/.pgpass)."""
    from endoreview.paths import data_dir

    if s.db_kind == "sqlite":
        return f"sqlite:///{Path(s.sqlite_path).expanduser() if s.sqlite_path else data_dir() / 'endoreview.sqlite3'}"
    url = s.pg_url
    try:
        import keyring

        pw = keyring.get_password(KEYRING_SERVICE, url)
        if pw:
            parts = urlsplit(url)
            url = parts._replace(netloc=f"{parts.username}:{pw}@{parts.netloc.split('@', 1)[1]}").geturl()
    except Exception:  # no keyring: psycopg reads ~/.pgpass
        pass
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _tree_size(p: Path) -> int:
    return sum(_size(Path(root) / f) for root, _dirs, files in os.walk(p) for f in files)


def cache_size() -> int:
    from endoreview.paths import cache_dir

    return _tree_size(cache_dir())


def runs_size() -> tuple[int, int]:
    """``(bytes, folders)`` of the fine-tune run folders (``<data dir>/runs/job-*``: the data snapshot, the run
    checkpoints and the exported model, ~95 MB each for the demo model; kept so a stopped run can be resumed, not
    trimmed by the cache limit)."""
    from endoreview.paths import data_dir

    root = data_dir() / "runs"
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return 0, 0
    return sum(_tree_size(p) for p in folders), len(folders)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:  # removed meanwhile (the media worker or another trim)
        return 0


def _last_use(paths: list[Path]) -> float:
    times = []
    for p in paths:
        try:
            times.append(p.stat().st_mtime)  # set on use by paths.mark_used (atime depends on the mount)
        except OSError:
            pass
    return max(times, default=0.0)


def trim_caches(limit_mb: int | None = None, protect: tuple[Path | str, ...] = ()) -> int:
    """Keep the cache under ``limit_mb`` (default: the saved ``cache_limit_mb``) by removing what was used longest
    ago: a proxy goes with its ``.proxy.json`` sidecar, a thumbnail strip on its own. Files in ``protect`` (the
    proxy on screen) stay. Everything here is rebuilt on demand. Returns the bytes freed."""
    from endoreview.paths import cache_dir

    limit = (load_settings().cache_limit_mb if limit_mb is None else limit_mb) * 2**20
    root = cache_dir()
    keep = {Path(p).resolve() for p in protect}
    entries: dict[Path, list[Path]] = {}  # key: the file a user would name (proxy .mp4 or thumbnail)
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            path = Path(dirpath) / f
            key = path.with_name(f[: -len(".proxy.json")] + ".mp4") if f.endswith(".proxy.json") else path
            entries.setdefault(key, []).append(path)
    sizes = {k: sum(_size(p) for p in v) for k, v in entries.items()}
    total = sum(sizes.values())
    freed = 0
    for key in sorted(entries, key=lambda k: _last_use(entries[k])):
        if total <= limit:
            break
        if any(p.resolve() in keep for p in entries[key]):
            continue
        try:
            for p in entries[key]:
                p.unlink(missing_ok=True)
        except OSError as exc:  # open elsewhere (Windows) or read-only: leave it, try the next
            log.info("cache: could not remove %s: %s", key, exc)
            continue
        total -= sizes[key]
        freed += sizes[key]
    if freed:
        log.info("cache over %d MB: removed %.1f MB used longest ago", limit // 2**20, freed / 2**20)
    return freed


def clear_caches() -> int:
    """Remove proxies and thumbnails (rebuilt on demand); returns the bytes freed."""
    from endoreview.paths import cache_dir

    root = cache_dir()
    freed = _tree_size(root)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return freed
