"""Headless import/export: ``python -m endoreview.interchange import|export|check ...``.

Prints one JSON object per line (``{"event": "progress", ...}`` while working, then ``{"event": "done", ...}``),
like the job subprocesses, so the app or a script can follow it. Exit status: 0 success, 1 some unit failed or the
run was interrupted, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, default=str), flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m endoreview.interchange", description=__doc__.splitlines()[0])
    p.add_argument("--db", help="database URL or SQLite file (default: the user's EndoReview database)")
    p.add_argument("--project", help="project name (created if missing; default: the default project)")
    p.add_argument("--reviewer", help="who makes the changes (default: the login name)")
    sub = p.add_subparsers(dest="cmd", required=True)

    imp = sub.add_parser("import", help="import videos, a dataset, or an annotation file")
    imp.add_argument("what", choices=["videos", "dataset", "labels", "predictions"])
    imp.add_argument("paths", nargs="+", type=Path)
    imp.add_argument("--layout", help="force a layout/format (see docs/interchange.md)")
    imp.add_argument("--video-id", type=int, help="attach an annotation file's labels to this video")
    imp.add_argument(
        "--base", type=int, default=1, help="first frame number of 1-based list files (default 1)"
    )
    imp.add_argument(
        "--name-base",
        type=int,
        choices=[0, 1],
        help="image-based label files: the number in each image file name is the frame (0- or 1-based)",
    )
    imp.add_argument(
        "--state", choices=["manual", "suggested", "accepted"], help="review state of imported labels"
    )
    imp.add_argument(
        "--chunk-size", type=int, default=500, help=argparse.SUPPRESS
    )  # obsolete: an import unit is written in one transaction; kept so existing scripts still run

    exp = sub.add_parser("export", help="export labels or prediction runs")
    exp.add_argument("format", choices=list(_formats()))
    exp.add_argument("out_dir", type=Path)
    which = exp.add_mutually_exclusive_group()
    which.add_argument(
        "--reviewed", action="store_true", help="only accepted, edited and manual labels (the default)"
    )
    which.add_argument(
        "--all",
        dest="all_labels",
        action="store_true",
        help="model suggestions too, each with its review state and score (COCO, CSV; other formats cannot say)",
    )
    exp.add_argument("--state", action="append", dest="states", help="only labels in this state (repeatable)")
    exp.add_argument(
        "--video-id", action="append", type=int, dest="video_ids", help="repeatable; default: all"
    )
    exp.add_argument(
        "--run-id", action="append", type=int, dest="run_ids", help="labels of this prediction run"
    )
    exp.add_argument(
        "--video-status",
        choices=["unreviewed", "in_review", "reviewed"],
        help="only videos in this review status",
    )
    exp.add_argument("--frames", action="store_true", help="also write the labelled frames as images")
    exp.add_argument("--all-frames", action="store_true", help="with --frames: every frame")
    exp.add_argument("--png", action="store_true", help="frames as PNG instead of JPEG")
    exp.add_argument("--pseudonymize", action="store_true", help="replace video names with pseudonymous ids")
    exp.add_argument(
        "--strip-metadata", action="store_true", help="leave out database, reviewer and path details"
    )
    exp.add_argument("--blank-text", action="store_true", help="black out each video's burned-in text region")

    reg = sub.add_parser("text-region", help="set the burned-in text rectangle of videos from one source")
    reg.add_argument("video_ids", nargs="+", type=int)
    grp = reg.add_mutually_exclusive_group(required=True)
    grp.add_argument("--rect", nargs=4, type=int, metavar=("X0", "Y0", "X1", "Y1"))
    grp.add_argument("--clear", action="store_true")

    chk = sub.add_parser("check", help="parse a dataset or file without touching the database")
    chk.add_argument("path", type=Path)
    chk.add_argument("--layout")
    chk.add_argument("--base", type=int, default=1)
    return p


def _formats():
    from endoreview.interchange.exporter import FORMATS

    return FORMATS


def _open(args):
    from endoreview.services.library import LibraryService
    from endoreview.services.projects import ProjectService
    from endoreview.store import Store

    store = Store.open(str(args.db) if args.db else None, reviewer=args.reviewer)
    LibraryService(store).migrate_folder_hashes()  # legacy per-process folder hashes -> deterministic ones
    from endoreview.services.app_settings import load_settings

    projects = ProjectService(store, load_settings().default_label_set)
    if args.project:
        proj = store.find_project(args.project) or projects.create_project(args.project)
    else:
        proj = projects.default_project()
    return store, proj.id


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    cancelled = {"flag": False}

    def on_signal(*_: Any) -> None:
        cancelled["flag"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args, cancelled)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace, cancelled: dict[str, bool]) -> int:

    def progress(done: int, total: int, item: str) -> None:
        _emit({"event": "progress", "done": done, "total": total, "item": item})

    if args.cmd == "check":
        from endoreview.interchange.detect import read_path
        from endoreview.interchange.model import InterchangeError

        try:
            import tempfile

            with tempfile.TemporaryDirectory() as td:
                col = read_path(args.path, layout=args.layout, work_dir=td, base=args.base)
        except InterchangeError as e:
            _emit({"event": "error", "file": e.file, "line": e.line, "field": e.field, "reason": e.reason})
            return 2
        _emit(
            {
                "event": "done",
                "layout": col.layout,
                "videos": len(col.videos),
                "frames": sum(v.frame_count or 0 for v in col.videos),
                "masks": sum(len(v.masks) for v in col.videos),
                "boxes": sum(len(v.boxes) for v in col.videos),
                "segments": sum(len(v.segments) for v in col.videos),
                "video_labels": sum(len(v.video_labels) for v in col.videos),
                "issues": [str(i) for i in col.issues],
            }
        )
        return 0

    store, project_id = _open(args)
    try:
        if args.cmd == "text-region":
            from endoreview.interchange.exporter import set_text_region

            set_text_region(store, args.video_ids, None if args.clear else args.rect)
            _emit({"event": "done", "videos": args.video_ids, "rect": None if args.clear else args.rect})
            return 0
        if args.cmd == "import" and args.what == "predictions":  # endofm predict --out-dir outputs
            from endoreview.services.predictions import import_prediction_outputs
            from endoreview.services.records import RunState

            runs = import_prediction_outputs(store, project_id, args.paths)
            for run in runs:
                _emit({"event": "run", **asdict(run)})
            failed = [r for r in runs if r.state == RunState.FAILED]
            _emit(
                {
                    "event": "done",
                    "finished": sum(r.state == RunState.FINISHED for r in runs),
                    "skipped": sum(r.state == "skipped" for r in runs),
                    "failed": len(failed),
                }
            )
            return 1 if failed else 0
        if args.cmd == "import":
            from endoreview.interchange.importer import Importer

            imp = Importer(store, project_id, chunk_size=args.chunk_size, state=args.state)
            kw = {"on_progress": progress, "should_cancel": lambda: cancelled["flag"]}
            if args.what == "videos":
                rep = imp.import_videos(args.paths, **kw)
            else:
                from endoreview.interchange.importer import ImportReport

                rep = ImportReport()
                for p in args.paths:
                    if args.what == "dataset":
                        r = imp.import_dataset(p, layout=args.layout, base=args.base, **kw)
                    else:
                        r = imp.import_annotations(
                            p,
                            layout=args.layout,
                            video_id=args.video_id,
                            base=args.base,
                            name_base=args.name_base,
                            **kw,
                        )
                    for k in ("videos_created", "videos_existing", "failed", "skipped", "issues"):
                        getattr(rep, k).extend(getattr(r, k))
                    rep.labels_added += r.labels_added
                    rep.units_done += r.units_done
                    rep.cancelled |= r.cancelled
                    if r.cancelled:
                        break
            empty = args.what == "labels" and rep.labels_added == 0 and not rep.failed and not rep.cancelled
            if empty:  # said, not passed over: a label import that found nothing is a mistake to look at
                where = ", ".join(str(p) for p in args.paths)
                _emit({"event": "error", "file": where, "line": None, "field": None,
                       "reason": "no labels found to import (is this the right folder or format? see `check`)"})  # fmt: skip
            d = asdict(rep)
            d["issues"] = [str(i) for i in rep.issues]
            _emit({"event": "done", "summary": rep.summary(), **d})
            return 0 if rep.ok and not empty else 1
        from endoreview.interchange.exporter import Exporter, ExportOptions

        opt = ExportOptions(
            args.format,
            selection="all" if args.all_labels else ("reviewed" if args.reviewed else None),
            states=args.states,
            video_ids=args.video_ids,
            run_ids=args.run_ids,
            video_status=args.video_status,
            project_id=None if args.video_ids else project_id,
            frames=args.frames,
            all_frames=args.all_frames,
            image_format="png" if args.png else "jpg",
            pseudonymize=args.pseudonymize,
            strip_metadata=args.strip_metadata,
            blank_text=args.blank_text,
        )
        rep = Exporter(store).export(
            args.out_dir, opt, on_progress=progress, should_cancel=lambda: cancelled["flag"]
        )
        _emit(
            {
                "event": "done",
                "out_dir": str(rep.out_dir),
                "format": rep.format,
                "videos": rep.videos,
                "labels": rep.labels,
                "frames_written": rep.frames_written,
                "files": len(rep.files),
                "dropped": rep.dropped,
                "cancelled": rep.cancelled,
                "failed": rep.failed,
            }
        )
        return 1 if rep.cancelled or rep.failed else 0
    except Exception as e:  # an entry point: report, never a traceback for expected failures
        from endoreview.interchange.exporter import ExportError
        from endoreview.interchange.model import InterchangeError
        from endoreview.store import StoreError

        if isinstance(
            e, InterchangeError | ExportError | StoreError | OSError
        ):  # ExportError: bad rectangle too
            _emit({"event": "error", "message": str(e)})
            return 2
        raise
    finally:
        store.close()
