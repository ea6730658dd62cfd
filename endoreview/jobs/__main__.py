"""``python -m endoreview.jobs <kind> …``: long work as a subprocess speaking JSON lines (see ``protocol``).

The kinds are those of :mod:`endoreview.jobs.registry`. The database URL comes from ``--db`` or
``$ENDOREVIEW_DB_URL`` (so passwords stay out of ``ps``).
"""

from __future__ import annotations

import sys
from typing import Any

from endoreview.jobs.protocol import EXIT_USAGE
from endoreview.jobs.registry import KINDS, UnknownKind, get_kind
from endoreview.jobs.runner import run_job


def main(argv: list[str] | None = None, **deps: Any) -> int:
    """Run the job kind named by ``argv[0]``; ``deps`` are injected collaborators (see ``JobRun.deps``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: python -m endoreview.jobs {{{','.join(KINDS)}}} [options]  (--help after a kind for more)"
        )
        return 0 if argv else EXIT_USAGE
    try:
        kind = get_kind(argv[0])
    except UnknownKind as e:
        print(e.args[0], file=sys.stderr)
        return EXIT_USAGE
    return int(run_job(kind, argv[1:], **deps) or 0)


if __name__ == "__main__":
    sys.exit(main())
