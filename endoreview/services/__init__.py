"""What a user can do, as plain Python over a :class:`endoreview.store.Store` (no Qt, no SQLAlchemy).

* :class:`~endoreview.services.projects.ProjectService` — projects, label sets, the default label set
  (video classes normal/abnormal, segment/mask/box class polyp, with colours and shortcut keys).
* :class:`~endoreview.services.library.LibraryService` — import videos (relative to a library root, content hash
  in :mod:`~endoreview.services.hashing`), list/filter/search, relink moved files, review status, reviewer
  assignment, remove a video (predictions and cache files; labels only when asked).
* :class:`~endoreview.services.editing.EditingService` — every label action (draw, edit, accept, reject, delete,
  bulk accept …), each one audited change set on one undo/redo stack.
* :class:`~endoreview.services.review_session.ReviewSession` — the open video under review (Qt-free): its labels,
  what the reviewer can see of the model, marks, blind pass; actions as named commands
  (:mod:`endoreview.services.review_commands`) run in order by one writer, change events for the editor.
* :class:`~endoreview.services.predictions.PredictionRecorder` — stream ``Predictor`` events into a prediction run.
* :func:`~endoreview.services.manifest.snapshot_manifest` / ``ManifestService`` — reviewed labels -> training
  manifest (:mod:`core_model.data.manifest`).
* :class:`~endoreview.services.changes.ChangePoller` — other workstations' edits since the last poll, each once.
* :class:`~endoreview.services.jobs.JobService` — create, start (command + environment), cancel and reap jobs
  (``python -m endoreview.jobs <kind>``).
* ``registry`` / ``models_cli`` / ``demo`` — the model registry service, ``endoreview models …`` and the demo.

Every method that changes something is one user action: one transaction, one audited change set. Errors are
:class:`endoreview.store.StoreError` subclasses (or the service's own, e.g. ``VideoImportError``) whose message can
be shown to the user as it is.
"""
