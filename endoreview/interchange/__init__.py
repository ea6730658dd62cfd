"""Import and export: public endoscopy datasets, hospital video (DICOM), and the annotation formats other tools use.

Layers (no Qt, no SQLAlchemy; the store is reached through ``endoreview.services``):

* :mod:`.model` — the in-memory intermediate representation (videos, masks as RLE, boxes, segments, video labels,
  provenance per annotation) and :class:`~.model.InterchangeError` (file + line/field + reason);
* :mod:`.formats` — COCO, Pascal VOC, YOLO, PNG/TIFF mask folders, CVAT for video 1.1, segment/video-label CSV,
  Endo-FM list files; :mod:`.layouts` — PolypDiag, CVC-ClinicDB, KUMC, Kvasir-SEG, per-case frame folders, zips;
  :mod:`.dicom` — DICOM video stream extraction; :mod:`.detect` — recognise and read any of them;
* :mod:`.importer` / :mod:`.exporter` — orchestration on top of the services; :mod:`.cli` — headless use.

See docs/interchange.md for the accepted layouts and the fidelity table.
"""
