"""``python -m endoreview.jobs <kind> …``: long work as a subprocess speaking JSON lines (see ``protocol``).

Kinds: ``predict`` (:mod:`endoreview.jobs.predict`), ``finetune`` (:mod:`endoreview.jobs.finetune`, when
installed). The database URL comes from ``--db`` or ``$ENDOREVIEW_DB_URL`` (so passwords stay out of ``ps``).
"""

from __future__ import annotations

import importlib
import sys

from endoreview.jobs.protocol import EXIT_USAGE

KINDS = {"predict": "endoreview.jobs.predict", "finetune": "endoreview.jobs.finetune"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: python -m endoreview.jobs {{{','.join(KINDS)}}} [options]  (--help after a kind for more)"
        )
        return 0 if argv else EXIT_USAGE
    kind = argv[0]
    if kind not in KINDS:
        print(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        module = importlib.import_module(KINDS[kind])
    except ModuleNotFoundError as e:
        print(f"job kind {kind!r} is not available in this installation ({e})", file=sys.stderr)
        return EXIT_USAGE
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
