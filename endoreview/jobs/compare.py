"""``python -m endoreview.jobs compare --a A --b B --manifest M [--split test] --out cmp.json [--record]``: two
model versions on the same held-out videos (:meth:`endoreview.services.registry.RegistryService.compare`).

Writes the comparison (metric table and the frames where the two disagree) as JSON to ``--out`` and ends with
``{"event": "done", "state": "succeeded", "result": {"out": ..., "disagreements": n}}``. Keeps no job row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from endoreview.jobs.protocol import EXIT_OK, emit
from endoreview.jobs.runner import JobKind, JobRun


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", required=True, help="version id or name")
    p.add_argument("--b", required=True, help="version id or name")
    p.add_argument("--manifest", required=True, help="training manifest with the held-out videos")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="where to write the comparison JSON")
    p.add_argument("--record", action="store_true", help="store the metrics on both versions")


def run(job: JobRun) -> int:
    from core_model.atomic import atomic_write_text
    from endoreview.services.registry import RegistryService

    p = job.params
    emit("progress", fraction=0.0, message="evaluating both versions on the held-out videos")
    cmp = RegistryService(job.store).compare(p["a"], p["b"], p["manifest"], p["split"], record=p["record"])
    atomic_write_text(Path(p["out"]), json.dumps(cmp.to_json(), default=str))
    result = {"out": p["out"], "disagreements": len(cmp.disagreements)}
    emit("done", state="succeeded", result=result, message=f"{len(cmp.disagreements)} disagreement(s)")
    return EXIT_OK


KIND = JobKind("compare", __doc__.split("\n\n")[0], add_arguments, run, row=False)
