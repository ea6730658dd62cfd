"""What a user can do, as plain Python over a :class:`endoreview.store.Store` (no Qt, no SQLAlchemy).

* :class:`~endoreview.services.projects.ProjectService` — projects, label sets, the default label set
  (video classes normal/abnormal, segment/mask/box class polyp, with colours and shortcut keys).
* :class:`~endoreview.services.library.LibraryService` — import videos (relative to a library root, content hash
  in :mod:`~endoreview.services.hashing`), list/filter/search, relink moved files, review status, reviewer
  assignment, remove a video (predictions and cache files; labels only when asked).
* :class:`~endoreview.services.labels.LabelService` — accept/edit/reject/create/delete labels, bulk accept,
  undo/redo (each an audited change), frame labels and the timeline summary.
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
