"""The registry of job kinds: ``python -m endoreview.jobs <kind>`` runs one of these and nothing else.

Each kind's module defines ``KIND`` (a :class:`endoreview.jobs.runner.JobKind`); modules are imported only when
their kind runs (torch and the model code load in the job process, never at app start).
"""

from __future__ import annotations

import importlib

from endoreview.jobs.runner import JobKind

KINDS: dict[str, str] = {
    "predict": "endoreview.jobs.predict",  # a model over library videos -> predictions in the store
    "finetune": "endoreview.jobs.finetune",  # reviewed labels -> a new model version (``--resume-of`` continues)
    "compare": "endoreview.jobs.compare",  # two model versions on the same held-out videos
    "model-frames": "endoreview.jobs.model_frames",  # what each model predicts on given frames (no job row)
    "convert": "endoreview.jobs.convert",  # an official Endo-FM checkpoint -> a registered model version
    "proxy": "endoreview.jobs.proxy",  # a video's scrubbing proxy, for the app's media queue (no job row)
}


class UnknownKind(LookupError):
    pass


def get_kind(name: str) -> JobKind:
    """The kind called ``name`` (``UnknownKind`` names the known ones)."""
    if name not in KINDS:
        raise UnknownKind(f"unknown job kind {name!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[name]).KIND
