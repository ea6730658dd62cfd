"""``python -m endoreview.jobs convert --checkpoint endo_fm.pth [--name N] [--activate] [--fp16]``: convert an
official Endo-FM checkpoint (``endofm convert``) and register it as a model version
(:meth:`endoreview.services.registry.RegistryService.import_official`). A file that is not one fails the job with
the converter's reason.
"""

from __future__ import annotations

import argparse

from endoreview.jobs.protocol import EXIT_FAILED, EXIT_OK
from endoreview.jobs.runner import JobKind, JobRun
from endoreview.store.records import JobState


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="the official .pth file")
    p.add_argument("--name", help="name of the new model version")
    p.add_argument("--activate", action="store_true", help="make it the active version")
    p.add_argument("--fp16", action="store_true", help="store the weights in half precision")


def run(job: JobRun) -> int:
    from endoreview.services.registry import RegistryError, RegistryService

    ctx, p = job.ctx, job.params
    assert ctx is not None and job.store is not None
    if not p.get("checkpoint"):
        ctx.finish(JobState.FAILED, {}, "no checkpoint given (--checkpoint)")
        return EXIT_FAILED
    ctx.progress(0.0, "converting the checkpoint")
    try:
        mv = RegistryService(job.store).import_official(
            p["checkpoint"], name=p.get("name"), activate=bool(p.get("activate")), fp16=bool(p.get("fp16"))
        )
    except RegistryError as e:
        ctx.finish(JobState.FAILED, {}, str(e))
        return EXIT_FAILED
    ctx.finish(JobState.SUCCEEDED, {"model_version_id": mv.id, "name": mv.name}, f"registered {mv.name}")
    return EXIT_OK


KIND = JobKind("convert", __doc__.split("\n\n")[0], add_arguments, run)
