"""Issue 22 item 4: a failed import stays on screen (naming the file and the reason) while a video is open."""

from __future__ import annotations


def test_an_undecodable_file_imported_during_review_is_reported_until_dismissed(qtbot, edit, tmp_path):
    ctl = edit
    win = ctl.parent()
    bad = tmp_path / "broken_procedure.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 40)  # an AVI header, then junk
    with qtbot.waitSignal(win.library_ctl.imported, timeout=20000) as sig:
        win.library_ctl.import_paths([str(bad)])
    assert sig.args[0].imported == 0 and sig.args[0].failed
    lib = win.library_ctl
    btn = lib.failure_button
    assert btn is not None and btn.isVisible() and "1 import problem" in btn.text()
    win.show_message("Fast scrubbing ready (proxy built).")  # what overwrote the status line before
    qtbot.wait(200)
    assert btn.isVisible()  # still there until the reviewer looks
    box = lib.show_failure_details()  # what clicking it does
    reason = sig.args[0].failed[0][1]
    assert "broken_procedure.avi" in box.informativeText() and reason and reason in box.informativeText()
    box.accept()
    assert not btn.isVisible() and lib.failures == []
