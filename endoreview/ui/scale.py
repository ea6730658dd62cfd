"""How large the app's text is on the reviewer's screen.

Decision (issue 22.7): Qt 6 already scales the whole UI by the operating system's display scale (Windows 125 % /
150 %, GNOME/KDE scaling, ``QT_SCALE_FACTOR`` / ``QT_SCREEN_SCALE_FACTORS``), with fractional factors passed through
unrounded, so a clinician whose screen is set to scale gets the app at that scale and nothing more is added here.
Many 27" 2560x1440 hospital monitors run unscaled, though (device pixel ratio 1): at about 109 ppi the 10 pt text
Qt draws for 96 ppi reads ~15 % smaller than on a 24" 1920x1080 (92 ppi). So, when the OS does not scale, the
**automatic** text size grows with the screen's width: 100 % below 2400 px, 120 % at 2400 px and up (2560x1440),
175 % at 3400 px and up (an unscaled 3840x2160). Settings ▸ Text size overrides it (80-200 %), applied at the
next start. Widgets size themselves from the font (:func:`em`), so larger text never clips them.
"""

from __future__ import annotations

from typing import Any

BASE_PT = 10.0
AUTO = 0  # Settings.text_size: 0 = automatic, else a percentage
CHOICES = (AUTO, 90, 100, 115, 130, 150, 175, 200)


def auto_text_percent(width_px: int, dpr: float) -> int:
    """The automatic text size for a screen ``width_px`` device pixels wide at device pixel ratio ``dpr``."""
    if dpr >= 1.25:  # the OS (or QT_SCALE_FACTOR) already scales the UI
        return 100
    if width_px >= 3400:
        return 175
    if width_px >= 2400:
        return 120
    return 100


def text_percent(setting: int, width_px: int, dpr: float) -> int:
    """The text size to use: the saved setting, or the automatic one for this screen."""
    if setting and setting != AUTO:
        return max(80, min(200, int(setting)))
    return auto_text_percent(width_px, dpr)


def screen_metrics(app: Any) -> tuple[int, float]:
    """(width in device pixels, device pixel ratio) of the primary screen; (0, 1.0) when there is none."""
    screen = app.primaryScreen()
    if screen is None:
        return 0, 1.0
    dpr = float(screen.devicePixelRatio())
    return round(screen.size().width() * dpr), dpr


def apply_text_size(app: Any, setting: int = AUTO) -> float:
    """Set the application font's point size for ``setting`` on the primary screen (a percentage of the desktop's
    font size, at least :data:`BASE_PT`); returns it."""
    width, dpr = screen_metrics(app)
    font = app.font()
    system = app.property("endoreviewSystemPt")  # the desktop's own font size, read once before any change
    if system is None:
        system = font.pointSizeF()
        app.setProperty("endoreviewSystemPt", system)
    pt = max(BASE_PT, float(system)) * text_percent(setting, width, dpr) / 100
    if abs(font.pointSizeF() - pt) > 0.01:
        font.setPointSizeF(pt)
        app.setFont(font)
    return pt


def em(widget: Any, n: float) -> int:
    """``n`` times the width of 'M' in ``widget``'s font, in pixels: sizes that follow the text size."""
    return round(n * widget.fontMetrics().horizontalAdvance("M"))


def fit_dialog(widget: Any, width: int, height: int) -> None:
    """Resize a dialog or window to ``width`` x ``height`` (its size at 10 pt, grown with the text size) but never
    beyond the screen's free area less a title bar: a 760 px tall dialog stays on a 1366x768 screen."""
    f = max(1.0, widget.font().pointSizeF() / BASE_PT)
    w, h = round(width * f), round(height * f)
    screen = widget.screen()
    if screen is not None:
        avail = screen.availableGeometry()
        title = 2 * widget.fontMetrics().height()
        w = min(w, int(avail.width() * 0.95))
        h = min(h, int((avail.height() - title) * 0.95))
    widget.resize(w, h)


def fill_closable(dialog: Any, content: Any, width: int, height: int) -> None:
    """Lay out ``dialog`` as ``content`` above a Close button, sized by :func:`fit_dialog`."""
    from PySide6.QtWidgets import QDialogButtonBox, QVBoxLayout

    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    lay = QVBoxLayout(dialog)
    lay.addWidget(content, 1)
    lay.addWidget(buttons)
    fit_dialog(dialog, width, height)
