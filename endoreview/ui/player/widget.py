"""The player widget: header (class banner + research notice), frame view, transport and overlay controls."""

from __future__ import annotations

import re

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QTextDocument
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from endoreview import RESEARCH_NOTICE
from endoreview.ui.icons import icon
from endoreview.ui.palette import colour_for, hex_colour
from endoreview.ui.player.controller import SPEEDS, PlayerController
from endoreview.ui.player.timecode import counter_text, parse_time
from endoreview.ui.player.view import FrameView
from endoreview.ui.scale import em
from endoreview.ui.tracks import PredictionTrack

NAME_EM = 26  # the open video's name gets at most this many 'M' widths (~300 px at 10 pt), then is elided


class PlayerWidget(QWidget):
    fullscreenRequested = Signal()

    def __init__(self, controller: PlayerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.track: PredictionTrack | None = None
        self.video_label: str | None = None
        self.show_banner = True
        self.painted_frames: list[tuple[int, float]] = []

        self.video_name = QLabel("")  # which video is open, always in sight of the frame being edited
        self.video_name.setObjectName("videoName")
        self.video_name.setStyleSheet("font-weight: 700; padding: 1px 6px;")
        self.switched = QLabel("")  # "Switched to … by the review queue": stays until the reviewer acts
        self.switched.setObjectName("videoSwitched")
        self.switched.setStyleSheet(
            "background: #ffb74d; color: #16161c; font-weight: 700; padding: 2px 8px; border-radius: 3px;"
        )
        self.switched.setVisible(False)
        self.banner = QLabel("")
        self.banner.setObjectName("classBanner")
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.notice = QLabel(RESEARCH_NOTICE)
        self.notice.setObjectName("researchNotice")
        self.notice.setStyleSheet("color: #ffb74d; font-weight: 600;")
        self.notice.setWordWrap(True)
        self.notice.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.notice.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.notice.setVisible(False)
        # its row stays when hidden: the frame does not move when a video's predictions arrive (nor the window
        # relayout and repaint whole while a video opens)
        keep = self.notice.sizePolicy()
        keep.setRetainSizeWhenHidden(True)
        self.notice.setSizePolicy(keep)
        # the header keeps one height whatever it shows (a banner appearing on some frames must not move the video)
        h = self.fontMetrics().height() + 10
        for lab in (self.video_name, self.switched, self.banner):
            lab.setFixedHeight(h)
        # where the frame's class and the whole-video call do not fit beside the name, the call wraps to a second
        # line: decided per video and window width (fit_header), never per frame
        self.banner.setWordWrap(True)
        # long names never widen the window (at 1366 px the jobs panel and the go-to field must stay on screen)
        # the class banner too: the whole-video call explains itself ("normal: no polyp above 0.70 (highest 0.56)")
        # and is only cut at the header's edge when even the whole row is too narrow, the tooltip has it whole
        for lab in (self.switched, self.banner):
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            lab.setMinimumWidth(40)
        self.video_name.setMaximumWidth(
            em(self, NAME_EM)
        )  # longer names are elided in the middle (tooltip whole)
        # row 1: which video, the frame's class, the whole-video call (the row to itself: whole at 1366 px with the
        # jobs panel open); row 2: the research notice, one line beside every model output
        row = QHBoxLayout()
        row.addWidget(self.video_name)
        row.addWidget(self.banner, 1)
        header = QVBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.setSpacing(0)
        header.addLayout(row)
        header.addWidget(self.notice)

        self.view = FrameView(self)
        self.view.setMinimumSize(320, 180)
        self.placeholder = QLabel("Open a video from the library (double-click) to start reviewing.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #aaa; font-size: 14pt; background: #101014;")
        self.placeholder.setWordWrap(True)

        # transport
        def button(name: str, tip: str, slot) -> QToolButton:
            b = QToolButton()
            b.setIcon(icon(name))
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            return b

        c = controller
        self.btn_start = button("skip-start", "First frame (Home)", lambda: c.seek(0))
        self.btn_back10 = button("back10", "Back 10 frames (Shift+Left)", lambda: c.step(-10))
        self.btn_back = button("back1", "Previous frame (Left)", lambda: c.step(-1))
        self.btn_play = button("play", "Play / pause (Space)", c.toggle_play)
        self.btn_fwd = button("fwd1", "Next frame (Right)", lambda: c.step(1))
        self.btn_fwd10 = button("fwd10", "Forward 10 frames (Shift+Right)", lambda: c.step(10))
        self.btn_end = button("skip-end", "Last frame (End)", lambda: c.seek(c.frame_count - 1))
        self.time_label = QLabel("--:--")
        self.time_label.setObjectName("timeLabel")
        self.time_label.setMinimumWidth(10)  # fit_counter: as wide as the open video's longest counter
        self.speed = QComboBox()
        self.speed.setToolTip("Playback speed (J slower, L faster)")
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(lambda k: c.set_speed(self.speed.itemData(k)))
        self.goto = QLineEdit()
        self.goto.setPlaceholderText("go to 1:23 or #frame")
        self.goto.setToolTip("A time (1:23, 83.5) or a frame number as the counter shows it (#2490)")
        # as wide as its hint, whatever the text size (at 150 px a 12 pt hint was cut to "go to 1:23 or #f…")
        self.goto.setFixedWidth(
            self.goto.fontMetrics().horizontalAdvance(self.goto.placeholderText()) + em(self, 2)
        )
        self.goto.returnPressed.connect(self._goto)
        self.btn_zoom_in = button("zoom-in", "Zoom in (+)", lambda: self.view.zoom(1.25))
        self.btn_zoom_out = button("zoom-out", "Zoom out (-)", lambda: self.view.zoom(0.8))
        self.btn_fit = button("fit", "Fit to window (0)", self.view.fit)
        self.btn_full = button("fullscreen", "Full screen (F)", self.fullscreenRequested.emit)
        transport = QHBoxLayout()
        transport.setContentsMargins(4, 0, 4, 0)
        for w in (
            self.btn_start,
            self.btn_back10,
            self.btn_back,
            self.btn_play,
            self.btn_fwd,
            self.btn_fwd10,
            self.btn_end,
        ):
            transport.addWidget(w)
        transport.addWidget(self.time_label, 1)
        transport.addWidget(self.speed)
        transport.addWidget(self.goto)
        for w in (self.btn_zoom_out, self.btn_zoom_in, self.btn_fit, self.btn_full):
            transport.addWidget(w)

        # overlay controls
        self.chk_masks = QCheckBox("Masks")
        self.chk_boxes = QCheckBox("Boxes")
        self.chk_banner = QCheckBox("Class banner")
        for chk in (self.chk_masks, self.chk_boxes, self.chk_banner):
            chk.setChecked(True)
            chk.toggled.connect(self._overlay_settings_changed)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold.setValue(50)
        self.threshold.setMaximumWidth(220)
        self.threshold.setToolTip("Hide predictions below this confidence")
        self.threshold.valueChanged.connect(self._overlay_settings_changed)
        self.threshold_label = QLabel()
        overlays = QHBoxLayout()
        overlays.setContentsMargins(4, 0, 4, 0)
        overlays.addWidget(QLabel("Show:"))
        overlays.addWidget(self.chk_masks)
        overlays.addWidget(self.chk_boxes)
        overlays.addWidget(self.chk_banner)
        overlays.addSpacing(12)
        overlays.addWidget(QLabel("Min. confidence"))
        overlays.addWidget(self.threshold)
        overlays.addWidget(self.threshold_label)
        overlays.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(header)
        lay.addWidget(self.switched)  # its own row, the whole width: never squeezed by the header
        # the placeholder covers the frame view (one cell) instead of taking its place: opening a video only hides
        # it, and nothing else on the page is laid out again
        stage = QGridLayout()
        stage.addWidget(self.view, 0, 0)
        stage.addWidget(self.placeholder, 0, 0)
        lay.addLayout(stage, 1)
        lay.addLayout(transport)
        lay.addLayout(overlays)
        self.placeholder.raise_()

        c.framePresented.connect(self._on_presented)
        c.frameChanged.connect(self._update_time)
        c.playingChanged.connect(lambda playing: self.btn_play.setIcon(icon("pause" if playing else "play")))
        c.speedChanged.connect(self._on_speed)
        c.sourceChanged.connect(self._on_source)
        self.view.image.painted.connect(lambda i, t: self.painted_frames.append((i, t)))
        self._overlay_settings_changed()

    # ---- content ----------------------------------------------------------------------------------------------
    def set_video_name(self, name: str) -> None:
        room = self.video_name.maximumWidth() - em(self, 1.5)  # the label's padding
        self.video_name.setText(
            self.video_name.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, room)
        )
        self.video_name.setToolTip(f"The open video: {name}")
        self.video_name.adjustSize()
        self.fit_header()

    def announce_switch(self, text: str | None) -> None:
        """Show (``text``) or clear the notice that another video was opened without the reviewer choosing it."""
        self.switched.setText(text or "")
        self.switched.setToolTip(text or "")
        self.switched.setVisible(bool(text))

    def set_predictions(self, track: PredictionTrack | None, video_label: str | None = None) -> None:
        self.track = track
        self.video_label = video_label
        self.view.overlay.known_classes = tuple(track.classes) if track else ()
        self.notice.setVisible(track is not None and not track.empty)
        self.refresh_overlay()
        self.fit_header()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self.fit_header()

    def fit_header(self) -> None:
        """One line for the frame's class and the whole-video call where the widest of them fits beside the name,
        else two (the call wraps): at 1366 px with the jobs panel open an abnormal video's explained call is whole."""
        fm = self.banner.fontMetrics()
        one = fm.height() + 10
        need = 0
        if self.show_banner and self.track is not None and self.video_label:
            bold = QFont(self.banner.font())
            bold.setBold(True)
            chip = max(
                (QFontMetrics(bold).horizontalAdvance(f"  {c} 100%  ") for c in self.track.classes), default=0
            )
            doc = QTextDocument()
            doc.setDefaultFont(self.banner.font())
            doc.setHtml(f"whole video: <b>{self.video_label}</b>")
            need = chip + round(doc.idealWidth()) + em(self, 2)
        width = self.banner.width() if self.banner.isVisible() else 0
        self.banner.setFixedHeight(one if need <= width or not need else one + fm.lineSpacing())

    def refresh_overlay(self) -> None:
        c = self.controller
        shown = c.shown[0] if c.shown else c.current
        t = self.track
        masks = t.masks.get(shown, []) if t else []
        boxes = t.boxes.get(shown, []) if t else []
        self.view.overlay.set_content(shown, masks, boxes)
        self._update_banner(shown)

    def _update_banner(self, index: int) -> None:
        parts = []
        if self.show_banner and self.track is not None:
            top = self.track.top_class(index)
            if top is not None and top[1] >= self.view.overlay.threshold:
                col = hex_colour(colour_for(top[0], tuple(self.track.classes)))
                parts.append(
                    f"<span style='background:#16161c; color:{col}; font-weight:700; padding:2px 6px'>"
                    f"&nbsp;{top[0]} {top[1]:.0%}&nbsp;</span>"
                )
            if self.video_label:
                parts.append(f"<span style='color:#ddd'>whole video: <b>{self.video_label}</b></span>")
        if self.controller.source is not None and (self.track is None or self.track.empty):
            parts.append(
                "<span style='color:#b0b0b8'>Not analysed yet: no model output for this video.</span>"
            )
        text = "&nbsp;&nbsp;".join(parts)
        if text != self.banner.text():
            self.banner.setText(text)
            self.banner.setToolTip(text)

    # ---- slots ------------------------------------------------------------------------------------------------
    def _on_source(self, source) -> None:
        has = source is not None
        self.placeholder.setVisible(not has)
        if not has:
            self.view.clear_frame()
            self.time_label.setText("--:--")
            self.time_label.setMinimumWidth(10)
        else:
            c = self.controller
            self.fit_counter(c.frame_count / c.fps if c.fps else 0.0, c.frame_count)

    def fit_counter(self, duration_s: float, frames: int) -> None:
        """The frame counter is never cut: its minimum width (part of the window's) is that of the video's widest
        counter text (an hour-long video's fits at 1366 px with the jobs panel open)."""
        widest = re.sub(r"\d", "0", counter_text(duration_s, duration_s, frames, frames))
        self.time_label.setMinimumWidth(self.time_label.fontMetrics().horizontalAdvance(widest) + 4)

    def _on_presented(self, index: int, image: np.ndarray, full: bool) -> None:
        src = self.controller.source
        if src is None:
            return
        self.view.show_frame(index, image, (src.width, src.height))
        self.refresh_overlay()

    def _update_time(self, index: int) -> None:
        c = self.controller
        if c.source is None:
            return
        self.time_label.setText(counter_text(index / c.fps, c.frame_count / c.fps, index + 1, c.frame_count))

    def _on_speed(self, speed: float) -> None:
        k = self.speed.findData(speed)
        if k >= 0 and k != self.speed.currentIndex():
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(k)
            self.speed.blockSignals(False)

    def _overlay_settings_changed(self) -> None:
        ov = self.view.overlay
        ov.show_masks = self.chk_masks.isChecked()
        ov.show_boxes = self.chk_boxes.isChecked()
        self.show_banner = self.chk_banner.isChecked()
        ov.threshold = self.threshold.value() / 100.0
        self.threshold_label.setText(f"{ov.threshold:.2f}")
        ov.update()
        self.refresh_overlay()
        self.fit_header()

    def _goto(self) -> None:
        frame = parse_time(self.goto.text(), self.controller.fps)
        if frame is None:
            self.goto.setStyleSheet("border: 1px solid #ef5350;")
            self.goto.setToolTip("Not a time (e.g. 1:23 or 83.5) or frame (#2490)")
            return
        self.goto.setStyleSheet("")
        self.controller.pause()
        self.controller.seek(frame)
        # the review keys (A, R, arrows) act on the frame just reached, not type into the box
        self.view.setFocus()
