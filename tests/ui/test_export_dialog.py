"""Issue 22 item 9: File → Export in the app, through the same exporter as the command line."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QDialogButtonBox

from tests.ui.helpers import _in_thread, saved


def test_file_export_writes_reviewed_labels_by_default_and_all_with_states_when_asked(qtbot, edit, tmp_path):
    from core_model.contract import rle_encode
    from endoreview.services.predictions import PredictionRecorder

    ctl = edit
    win = ctl.parent()
    import numpy as np

    m = np.zeros((240, 320), np.uint8)
    m[90:130, 110:150] = 1
    events = [
        {"event": "frame", "frame": f, "probs": {"normal": 0.9, "abnormal": 0.1},
         "masks": [{"label": "polyp", "score": 0.7, "rle": rle_encode(m)}]}
        for f in range(5)
    ] + [{"event": "video_done", "frames": 5, "probs": {"normal": 0.9, "abnormal": 0.1}}]  # fmt: skip
    _in_thread(lambda: PredictionRecorder(ctl.parent().backend.store, ctl.video.id, None).record(events))
    ctl.session.reload()
    saved(qtbot, ctl)
    ctl.accept()  # frame 0's suggestion, reviewed in the app
    saved(qtbot, ctl)
    menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&File")
    assert win.act_export in menu.actions()
    win.act_export.trigger()
    dlg = win._export
    assert dlg.isVisible() and dlg.reviewed.isChecked()  # ground truth by default
    assert dlg.which_videos.currentData() == "selected" and dlg.selected == [ctl.video.id]
    dlg.format.setCurrentIndex(dlg.format.findData("coco"))
    dlg.folder.setText(str(tmp_path / "gt"))
    with qtbot.waitSignal(dlg.finished_export, timeout=20000) as sig:
        dlg.export_btn.click()
    assert sig.args[0].labels == 1 and "Exported: 1 label(s) of 1 video(s)" in dlg.status.text()
    doc = json.loads((tmp_path / "gt" / "annotations.json").read_text())
    assert [a["review_state"] for a in doc["annotations"]] == ["accepted"]
    # all labels, with their states; a format that cannot carry them is flagged before exporting
    dlg.all_labels.setChecked(True)
    dlg.format.setCurrentIndex(dlg.format.findData("yolo-det"))
    assert "cannot say which labels are unreviewed" in dlg.note.text()
    dlg.format.setCurrentIndex(dlg.format.findData("coco"))
    assert dlg.note.text() == ""
    dlg.folder.setText(str(tmp_path / "all"))
    with qtbot.waitSignal(dlg.finished_export, timeout=20000):
        dlg.export_btn.click()
    doc = json.loads((tmp_path / "all" / "annotations.json").read_text())
    assert sorted(a["review_state"] for a in doc["annotations"]) == ["accepted"] + ["suggested"] * 4
    assert all(a["score"] == 0.7 for a in doc["annotations"])
    dlg.buttons.button(QDialogButtonBox.StandardButton.Close).click()
    assert not dlg.isVisible()
