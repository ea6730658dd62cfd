"""``python -m endoreview.jobs proxy --source VIDEO [--out PATH]``: build a video's scrubbing proxy
(:func:`endoreview.media.proxy.build_proxy`). Keeps no job row and needs no database.

The app's media queue runs it in its own process (a 30-minute 1080p proxy is ~500 s of CPU: in the app's process
its per-frame Python work and allocations held the interpreter lock and fed the garbage collector the GUI thread
waits on). The process runs at the priority of the thread that started it (the media queue's, niced).

Prints JSON lines: ``{"event": "progress", "done": n, "total": n}`` every 30 frames (``total`` 0 when the container
does not say), then ``{"event": "done", "state": "succeeded", "proxy": {…ProxyInfo…}}``. A video that cannot be
made into a proxy ends with ``{"event": "done", "state": "failed", "message": reason}`` (exit 1); SIGTERM stops it
at the next frame (``"cancelled"``, exit 3). Either way no proxy and no partial file is left.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from endoreview.jobs.protocol import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, emit
from endoreview.jobs.runner import JobKind, JobRun


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="the video file")
    p.add_argument("--out", default=None, help="the proxy file (default: the app's proxy cache)")


def run(job: JobRun) -> int:
    from endoreview.media.proxy import ProxyCancelled, ProxyError, build_proxy

    try:
        info = build_proxy(
            job.params["source"],
            job.params["out"],
            on_progress=lambda done, total: emit("progress", done=done, total=total),
            should_cancel=job.cancel,
        )
    except ProxyCancelled:
        emit("done", state="cancelled", message="cancelled")
        return EXIT_CANCELLED
    except ProxyError as exc:
        emit("done", state="failed", message=exc.reason)
        return EXIT_FAILED
    emit("done", state="succeeded", proxy=asdict(info))
    return EXIT_OK


KIND = JobKind("proxy", __doc__.split("\n\n")[0], add_arguments, run, row=False, store=False)
