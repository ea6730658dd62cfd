"""``endoreview models list|register|import|activate|rollback|delete|compare`` (headless model registry).

    endoreview models list [--json]
    endoreview models register MODEL_DIR [--name N] [--parent ID] [--activate] [--no-copy]
    endoreview models import endo_fm.pth [--name N] [--activate] [--fp16]
    endoreview models activate ID|NAME
    endoreview models rollback
    endoreview models delete ID|NAME [--keep-files]
    endoreview models compare A B --manifest M [--split test] [--out cmp.json] [--record]

``--db URL`` (or ``$ENDOREVIEW_DB_URL``) picks the database. Exit codes: 0 ok, 1 the action failed (the message
says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endoreview models", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="database URL (default: $ENDOREVIEW_DB_URL or the user data directory)")
    p.add_argument("--reviewer", help="recorded as the author of the change (default: the OS login)")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="registered model versions")
    ls.add_argument("--json", action="store_true", help="one JSON object per version")
    rg = sub.add_parser("register", help="register a model directory as a new version")
    rg.add_argument("model_dir")
    rg.add_argument("--name")
    rg.add_argument("--parent", help="parent version id or name")
    rg.add_argument("--notes", default="")
    rg.add_argument("--activate", action="store_true")
    rg.add_argument("--no-copy", action="store_true", help="keep the files where they are")
    im = sub.add_parser("import", help="convert and register an official Endo-FM checkpoint")
    im.add_argument("checkpoint")
    im.add_argument("--name")
    im.add_argument("--activate", action="store_true")
    im.add_argument("--fp16", action="store_true")
    ac = sub.add_parser("activate", help="make a version the active one")
    ac.add_argument("ref", help="version id or name")
    sub.add_parser("rollback", help="activate the parent of the active version")
    de = sub.add_parser("delete", help="remove a version (not the active one)")
    de.add_argument("ref")
    de.add_argument("--keep-files", action="store_true")
    cp = sub.add_parser("compare", help="two versions on the same held-out videos")
    cp.add_argument("a")
    cp.add_argument("b")
    cp.add_argument("--manifest", required=True, help="training manifest with the held-out videos")
    cp.add_argument("--split", default="test")
    cp.add_argument("--out", help="write the comparison (metrics + disagreeing frames) as JSON")
    cp.add_argument("--record", action="store_true", help="store the metrics on both versions")
    cp.add_argument("--max-frames", type=int, default=20, help="disagreeing frames to print")
    return p


def _row(mv: Any) -> dict[str, Any]:
    d = asdict(mv)
    d["created_at"] = mv.created_at.isoformat(timespec="seconds") if mv.created_at else None
    return d


def _headline(metrics: dict[str, Any]) -> str:
    flat = metrics.get("test") or metrics.get("val") or metrics
    keys = ("classification/f1", "segmentation/dice_seq", "detection/f1")
    parts = [f"{k.split('/')[0][:3]} {flat[k]:.3f}" for k in keys if isinstance(flat.get(k), int | float)]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from endoreview.services.registry import RegistryError, RegistryService
    from endoreview.store import Store, StoreError

    try:
        store = Store.open(args.db, reviewer=args.reviewer)
    except StoreError as exc:
        print(f"endoreview models: {exc}", file=sys.stderr)
        return 1
    reg = RegistryService(store)
    try:
        if args.cmd == "list":
            versions = reg.list()
            if args.json:
                for mv in versions:
                    print(json.dumps(_row(mv), default=str))
                return 0
            if not versions:
                print("no model versions registered (endoreview models import / register)")
            for mv in versions:
                mark = "*" if mv.is_active else " "
                parent = f" parent {mv.parent_id}" if mv.parent_id else ""
                print(
                    f"{mark} {mv.id:>3}  {mv.name:<32} {mv.architecture:<13} {mv.created_at:%Y-%m-%d %H:%M}"
                    f"{parent}  {_headline(mv.metrics)}"
                )
            return 0
        if args.cmd == "register":
            parent = reg.get(args.parent).id if args.parent else None
            mv = reg.register(
                args.model_dir,
                name=args.name,
                parent_id=parent,
                notes=args.notes,
                activate=args.activate,
                copy=not args.no_copy,
            )
            print(f"registered {mv.name} as version {mv.id}{' (active)' if mv.is_active else ''}")
            return 0
        if args.cmd == "import":
            mv = reg.import_official(args.checkpoint, name=args.name, activate=args.activate, fp16=args.fp16)
            print(f"imported {args.checkpoint} as version {mv.id} ({mv.name}, {mv.architecture})")
            return 0
        if args.cmd == "activate":
            mv = reg.activate(args.ref)
            print(f"active model: {mv.name} (version {mv.id})")
            return 0
        if args.cmd == "rollback":
            mv = reg.rollback()
            print(f"rolled back; active model: {mv.name} (version {mv.id})")
            return 0
        if args.cmd == "delete":
            mv = reg.get(args.ref)
            reg.delete(mv.id, delete_files=not args.keep_files)
            print(f"deleted {mv.name} (version {mv.id})")
            return 0
        if args.cmd == "compare":
            cmp = reg.compare(args.a, args.b, args.manifest, args.split, record=args.record)
            print(cmp.table())
            print(f"\n{len(cmp.disagreements)} of {cmp.frames_compared} frames/videos disagree")
            for d in cmp.disagreements[: args.max_frames]:
                where = "whole video" if d.frame < 0 else f"frame {d.frame}"
                print(f"  {d.video} {where}: {d.reason}  ({cmp.a.name}: {d.a}; {cmp.b.name}: {d.b})")
            if args.out:
                from core_model.atomic import atomic_write_text

                atomic_write_text(args.out, json.dumps(cmp.to_json(), default=str))
            return 0
    except (RegistryError, StoreError, ValueError, FileNotFoundError) as exc:
        print(f"endoreview models {args.cmd}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 2
