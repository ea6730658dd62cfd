"""The player: a Qt-side controller (:mod:`.controller`), the frame view with overlays (:mod:`.view`) and the
widget with transport and overlay controls (:mod:`.widget`)."""
