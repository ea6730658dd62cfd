"""Issue 21 item 3 (the GUI thread never stalls > 100 ms, opening a 30-minute video): an open goes in stages, and
nothing on the player page is laid out again while it does."""

from __future__ import annotations

from PySide6.QtCore import QRect

from tests.ui.helpers import _in_thread


def _analysed(be, path, n=60):
    from endoreview.services.predictions import PredictionRecorder

    video, _ = _in_thread(be.library.import_video, be.project.id, str(path))

    def events():
        for f in range(n):
            ev = {"event": "frame", "frame": f, "probs": {"normal": 0.3, "abnormal": 0.7}}
            ev["boxes"] = [{"label": "polyp", "score": 0.9, "bbox": [10.0, 10.0, 60.0, 50.0]}]
            yield ev
        yield {"event": "video_done", "frames": n, "probs": {"normal": 0.3, "abnormal": 0.7}}

    _in_thread(lambda: PredictionRecorder(be.store, video.id, None).record(events()))
    return video


def test_a_video_opens_frame_first_then_labels_then_tracks_and_the_frame_never_moves(
    qtbot, main_window, indexed_video
):
    """Started together, the decoder, the label read and the timeline's tracks held the interpreter lock while the
    GUI thread painted (stalls of 115-190 ms on a 30-minute video). Now the labels are read once the first frame is
    on screen and the tracks after them; and the frame view keeps its place throughout (the research notice
    appearing with the predictions used to push it down, and swapping the placeholder for it laid out the page)."""
    win = main_window
    video = _analysed(win.backend, indexed_video)
    ctl = win.editing()
    win.resize(1280, 800)
    pw = win.player_widget
    win.tabs.setCurrentIndex(1)  # the Player tab, before any video
    qtbot.wait(100)

    def where() -> QRect:
        return QRect(pw.view.mapTo(win, pw.view.rect().topLeft()), pw.view.size())

    before = where()
    seen: list[tuple[str, QRect]] = []
    win.player.framePresented.connect(lambda *_: seen.append(("frame", where())))
    ctl.labelsChanged.connect(lambda: seen.append(("labels", where())))
    win.review_ctl.tracksLoaded.connect(lambda _t: seen.append(("tracks", where())))
    win.open_video(video.id)
    qtbot.waitUntil(lambda: ctl.loaded and win.review_ctl.tracks is not None, timeout=15000)
    qtbot.wait(200)
    order = [name for name, _ in seen]
    assert order.index("frame") < order.index("labels") < order.index("tracks"), order
    assert pw.notice.isVisible() and not pw.placeholder.isVisible()
    assert {rect.getRect() for _, rect in seen} | {where().getRect()} == {before.getRect()}
    # the suggestions around the frame are there, and the model's box stays drawn on it after the tracks came
    # (the tracks' arrival used to replace the frame's overlay with the track's, empty for a stored run)
    assert ctl.session.open_suggestions_at(0)
    assert len(pw.view.overlay.boxes) == 1
