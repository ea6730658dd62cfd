"""Icons from ``resources/icons`` (SVG, drawn for this app), cached by name."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from endoreview.paths import resources_dir


@cache
def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def app_icon() -> QIcon:
    return icon("app")
