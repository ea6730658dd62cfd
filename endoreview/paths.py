"""Where user data lives. Never inside the install folder; tests redirect it with ENDOREVIEW_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "EndoReview"


def data_dir() -> Path:
    """The user data directory (database, proxies, thumbnails, models, logs)."""
    override = os.environ.get("ENDOREVIEW_DATA_DIR")
    if override:
        p = Path(override).expanduser()
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir() -> Path:
    """Proxies and thumbnails: derived data that can be rebuilt."""
    override = os.environ.get("ENDOREVIEW_DATA_DIR")
    if override:
        p = Path(override).expanduser() / "cache"
    else:
        import platformdirs

        p = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def mark_used(*paths: Path) -> None:
    """Record that cached files were just used (the cache trims what was used longest ago; reading alone does not
    update the access time on relatime/noatime mounts)."""
    for p in paths:
        try:
            os.utime(p)
        except OSError:
            pass


def models_dir() -> Path:
    p = data_dir() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def logs_dir() -> Path:
    p = data_dir() / "logs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_db_url() -> str:
    url = os.environ.get("ENDOREVIEW_DB_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'endoreview.sqlite3'}"


def resources_dir() -> Path:
    """Bundled resources (icons, demo model). Works from a source checkout and from a PyInstaller bundle."""
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"
