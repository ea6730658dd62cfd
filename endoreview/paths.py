"""Where user data lives. Never inside the install folder; tests redirect it with ENDOREVIEW_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "EndoReview"


def private_dir(p: Path) -> Path:
    """Create ``p`` (and missing parents) readable by this user only (0700); an existing folder of ours that others
    can read is tightened. Patient videos, frames and labels live under these folders."""
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        st = p.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(p, 0o700)
    except (
        OSError,
        AttributeError,
    ):  # AttributeError: os.getuid does not exist on Windows (ACLs apply there)
        pass
    return p


def data_dir() -> Path:
    """The user data directory (database, proxies, thumbnails, models, logs), private to the user."""
    override = os.environ.get("ENDOREVIEW_DATA_DIR")
    if override:
        p = Path(override).expanduser()
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return private_dir(p)


def cache_dir() -> Path:
    """Proxies and thumbnails: derived data that can be rebuilt."""
    override = os.environ.get("ENDOREVIEW_DATA_DIR")
    if override:
        p = Path(override).expanduser() / "cache"
    else:
        import platformdirs

        p = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return private_dir(p)


def mark_used(*paths: Path) -> None:
    """Record that cached files were just used (the cache trims what was used longest ago; reading alone does not
    update the access time on relatime/noatime mounts)."""
    for p in paths:
        try:
            os.utime(p)
        except OSError:
            pass


def models_dir() -> Path:
    return private_dir(data_dir() / "models")


def logs_dir() -> Path:
    return private_dir(data_dir() / "logs")


def imports_dir() -> Path:
    """Extracted archives, DICOM remuxes and frame sequences of imports (patient data: private)."""
    return private_dir(data_dir() / "imports")


def default_db_url() -> str:
    url = os.environ.get("ENDOREVIEW_DB_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'endoreview.sqlite3'}"


def resources_dir() -> Path:
    """Bundled resources (icons, demo model): next to the package, in a source checkout and in the desktop bundle
    alike (the bundle copies the tree as it is, packaging/assemble.py)."""
    return Path(__file__).resolve().parent.parent / "resources"
