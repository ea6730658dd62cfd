"""``endoreview``: the desktop app, plus headless sub-commands (``endoreview models …``).

Keeps start-up light: no torch, no Qt until needed.
"""

from __future__ import annotations

import argparse
import sys

from endoreview import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endoreview", description="EndoReview desktop app (research use only)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--demo", action="store_true", help="open the built-in demo (phantom videos + demo model)")
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="check this installation end to end (offscreen, throw-away data folder) and exit",
    )
    p.add_argument("--reviewer", help="reviewer name (default: the operating-system login)")
    p.add_argument("--db", help="database URL (default: SQLite file in the user data directory)")
    p.add_argument("paths", nargs="*", help="videos or folders to import and open")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "models":
        from endoreview.services.models_cli import main as models_main

        return int(models_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"EndoReview {__version__}")
        return 0
    if args.smoke_test:
        from endoreview.smoke import run_smoke_test

        return run_smoke_test()
    from endoreview.ui.app import run_app

    return int(run_app(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
