"""The EndoReview desktop app (PySide6 + pyqtgraph). Widgets render what services return; blocking work never runs
on the GUI thread (:mod:`endoreview.media.guard` checks it).

Start-up: :mod:`.app` (``run_app``), :mod:`.main_window` (layout only). One controller per editor:
:mod:`.library_controller` (library, import, relink), :mod:`.review_controller` (player + timeline for one video),
:mod:`.analysis` (predict jobs), :mod:`.demo_controller` (the built-in demo); the correction tools live in
:mod:`.editing`, fine-tuning in :mod:`.finetune`, the model registry in :mod:`.registry`.

Building blocks: :mod:`.player` (controller, frame view with overlays, transport), :mod:`.timeline`,
:mod:`.library`, :mod:`.jobs_panel` (QProcess + JSON lines), :mod:`.tasks` (worker threads, guarded services),
:mod:`.backend` (the open services, guarded), :mod:`.views` (library and player view models), :mod:`.proxies`
(background proxies and thumbnails), :mod:`.tracks` and :mod:`.palette` (Qt-free data and colours),
:mod:`.shortcuts`, :mod:`.icons`.
"""
