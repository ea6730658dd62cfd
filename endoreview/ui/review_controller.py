"""Opening a video for review: player source, predictions and labels on the timeline and overlays, navigation keys.

One controller for the player + timeline pair (the label, mask and box editors of later work get their own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from endoreview.media.opener import long_lived_opener, proxy_opener
from endoreview.media.proxy import ProxyInfo
from endoreview.ui.player.controller import PlayerController, VideoSource
from endoreview.ui.proxies import MediaQueue, MediaRequest
from endoreview.ui.tasks import TaskRunner
from endoreview.ui.tracks import low_confidence_starts, next_after
from endoreview.ui.views import PlayerViews, VideoInfo, VideoTracks

if (
    TYPE_CHECKING
):  # the widgets (pyqtgraph) are built after the library is listed: see MainWindow.review_widgets
    from endoreview.ui.player.widget import PlayerWidget
    from endoreview.ui.timeline import TimelineWidget

log = logging.getLogger(__name__)

#: seconds the media queue starts no background work (other videos' thumbnails) while a video opens
OPEN_HOLD_S = 2.0
#: an open goes in stages, each worker's Python starting after the GUI thread has drawn the stage before: the
#: frame first (the decoder), then the labels and suggestions around it (:attr:`ReviewController.frameShown`),
#: then the timeline's tracks. Started together, the three workers held the interpreter lock while the GUI thread
#: painted (every Qt call that releases the lock waited to get it back): 115-190 ms stalls opening a 30-minute
#: video, 60-80 ms in stages (docs/experiments/app_speed.md, sixth session).
OPEN_TRACKS_AFTER_MS = 100  # after the first frame is on screen
OPEN_STAGE_MAX_MS = 400  # the later stages start anyway when no frame comes (a slow or failing decoder)


def _open_original(path: str) -> Callable:
    return long_lived_opener(path)


def _open_proxy(info: ProxyInfo) -> Callable:
    return proxy_opener(info)


class ReviewController(QObject):
    videoOpened = Signal(object)  # VideoInfo
    frameShown = Signal(object)  # VideoInfo: an opened video's first frame is on screen (or took too long)
    videoMissing = Signal(object)  # VideoInfo
    tracksLoaded = Signal(object)  # VideoTracks
    message = Signal(str)

    def __init__(
        self,
        views: PlayerViews,
        runner: TaskRunner,
        media: MediaQueue,
        player: PlayerController,
        parent: QObject | None = None,
    ) -> None:
        """The player page's widgets come later (:meth:`attach`), before the first video opens."""
        super().__init__(parent)
        self.views, self.runner, self.media = views, runner, media
        self.player = player
        self.player_widget: PlayerWidget | None = None
        self.timeline: TimelineWidget | None = None
        self.info: VideoInfo | None = None
        self.tracks: VideoTracks | None = None
        self._opening: int | None = None
        self._reload_inflight = False
        self._reload_again = False
        self._last_reload = 0.0
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.timeout.connect(self.reload_tracks)
        self._staging: int | None = None  # the video whose first frame the later stages wait for
        self._stage_timer = QTimer(self)
        self._stage_timer.setSingleShot(True)
        self._stage_timer.timeout.connect(self._first_frame)
        self._tracks_timer = QTimer(self)
        self._tracks_timer.setSingleShot(True)
        self._tracks_timer.timeout.connect(self.reload_tracks)
        player.framePresented.connect(lambda *_: self._first_frame())
        media.proxyReady.connect(self._on_proxy)
        media.progress.connect(self._on_proxy_progress)
        player.sourceError.connect(self._on_source_error)

    def attach(self, player_widget: PlayerWidget, timeline: TimelineWidget) -> None:
        """The player page's frame view and timeline (built once, by the main window)."""
        self.player_widget, self.timeline = player_widget, timeline
        self.player.frameChanged.connect(self._on_frame)
        timeline.seekRequested.connect(self._seek_from_timeline)

    # ---- opening ----------------------------------------------------------------------------------------------
    def open_video(self, video_id: int) -> None:
        if self.player_widget is None:
            raise RuntimeError("attach() the player page before opening a video")
        self._opening = video_id
        self.media.hold(OPEN_HOLD_S)
        self.runner.submit(
            "video info",
            self.views.video_info,
            video_id,
            on_done=self._on_info,
            on_error=self._on_info_error,
        )

    def _on_info_error(self, exc: BaseException) -> None:
        self.message.emit(f"Could not open the video: {exc}")

    def _on_info(self, info: VideoInfo) -> None:
        if info.video_id != self._opening:
            return
        if not info.exists:
            self.player.close()
            self.player_widget.placeholder.setText(
                f"<b>File not found</b><br>{info.path}<br><br>The video was moved or deleted. Import it again from its "
                "new place and EndoReview re-links it (same content), keeping all labels."
            )
            self.videoMissing.emit(info)
            return
        self.info = info
        src = VideoSource(
            key=info.video_id,
            path=info.path,
            frame_count=info.frame_count,
            fps=info.fps,
            width=info.width,
            height=info.height,
            open_original=_open_original(info.path),
            open_proxy=_open_proxy(info.proxy) if info.proxy else None,
            proxy_size=(info.proxy.width, info.proxy.height) if info.proxy else None,
        )
        self.player.open(src)
        self.timeline.set_video(info.frame_count, info.fps)
        self.player_widget.set_predictions(None)
        self.tracks = None
        if info.proxy is None:
            self.media.request(MediaRequest(info.video_id, info.path, info.frame_count), urgent=True)
        self.videoOpened.emit(info)
        self._staging = info.video_id
        self._tracks_timer.stop()
        self._stage_timer.start(OPEN_STAGE_MAX_MS)

    def _first_frame(self) -> None:
        """The opened video's first frame is on screen: its labels are read now, its tracks a little later."""
        if self._staging is None or self.info is None or self.info.video_id != self._staging:
            return
        self._staging = None
        self._stage_timer.stop()
        self.frameShown.emit(self.info)
        self._tracks_timer.start(OPEN_TRACKS_AFTER_MS)

    def _on_source_error(self, message: str) -> None:
        self.message.emit(f"Cannot decode this video: {message}")
        if self.player.shown is None and self.info is not None:  # nothing could be shown: say why, in place
            info = self.info
            self.close_video()
            self.player_widget.placeholder.setText(
                f"<b>This video cannot be read</b><br>{info.path}<br><br>{message}<br><br>"
                "The file may be damaged or still being copied. Labels already made for it are kept."
            )
            self.videoMissing.emit(info)

    def close_video(self) -> None:
        self._opening = self._staging = None
        for timer in (self._stage_timer, self._tracks_timer, self._reload_timer):
            timer.stop()
        self.info = None
        self.player.close()

    def _on_proxy_progress(self, video_id: int, done: int, total: int) -> None:
        if self.info is not None and self.info.video_id == video_id and total and done % 150 == 0:
            self.message.emit(
                f"Preparing fast scrubbing for this video: {done / total:.0%} (the player works meanwhile)"
            )

    def _on_proxy(self, video_id: int, proxy: ProxyInfo) -> None:
        if self.info is not None and self.info.video_id == video_id:
            self.player.set_proxy(_open_proxy(proxy), (proxy.width, proxy.height))
            self.message.emit("Fast scrubbing ready (proxy built).")

    # ---- tracks -----------------------------------------------------------------------------------------------
    def reload_tracks(self) -> None:
        if self.info is None:
            return
        if self._reload_inflight:  # a long video's tracks can take longer to read than the reload interval
            self._reload_again = True
            return
        vid = self.info.video_id
        self._last_reload = time.monotonic()
        self._reload_inflight = True

        def done(tracks: VideoTracks) -> None:
            self._reload_finished()
            self._on_tracks(vid, tracks)

        def failed(exc: BaseException) -> None:
            self._reload_finished()
            self.message.emit(f"Could not load the predictions and labels: {exc}")

        self.runner.submit("tracks", self.views.tracks, vid, on_done=done, on_error=failed)

    def _reload_finished(self) -> None:
        self._reload_inflight = False
        if self._reload_again:
            self._reload_again = False
            self.reload_soon(0.5)

    def reload_soon(self, min_interval: float = 2.0) -> None:
        """Throttled reload while a job streams results for the open video."""
        if self._reload_timer.isActive():
            return
        wait = max(0.0, min_interval - (time.monotonic() - self._last_reload))
        self._reload_timer.start(int(wait * 1000))

    def _on_tracks(self, video_id: int, tracks: VideoTracks) -> None:
        if self.info is None or self.info.video_id != video_id:
            return
        self.tracks = tracks
        self.player_widget.set_predictions(tracks.predictions, tracks.video_label)
        self.timeline.set_tracks(tracks.predictions, tracks.labels)
        self.tracksLoaded.emit(tracks)

    # ---- navigation -------------------------------------------------------------------------------------------
    def _on_frame(self, index: int) -> None:
        self.timeline.set_playhead(index, follow=True)

    def _seek_from_timeline(self, frame: int) -> None:
        self.player.seek(frame)

    def next_disagreement(self, forward: bool = True) -> None:
        f = next_after(self.timeline.disagree_frames, self.player.current, forward)
        self._jump(f, "No further disagreement between model and labels.")

    def next_uncertain(self, forward: bool = True) -> None:
        pred = self.tracks.predictions if self.tracks else None
        f = next_after(low_confidence_starts(pred), self.player.current, forward) if pred else None
        self._jump(f, "No further low-confidence region.")

    def _jump(self, frame: int | None, otherwise: str) -> None:
        if frame is None:
            self.message.emit(otherwise)
            return
        self.player.pause()
        self.player.seek(frame)
