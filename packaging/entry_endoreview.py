"""Frozen entry point for the desktop app (PyInstaller).

The bundle has no Python interpreter, yet the app starts its background work as ``sys.executable -m <module> …``
(jobs, fine-tuning, model conversion). In the bundle ``sys.executable`` is this program, so it accepts the two
interpreter forms the app uses, ``-m module args…`` and ``-c code``, and otherwise starts the app.
"""

import multiprocessing
import runpy
import sys


def _interpreter_mode(argv: list[str]) -> int | None:
    if len(argv) >= 2 and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        try:
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return 0
    if len(argv) >= 2 and argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        try:
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return 0
    return None


if __name__ == "__main__":
    multiprocessing.freeze_support()
    rc = _interpreter_mode(sys.argv[1:])
    if rc is not None:
        sys.exit(rc)
    from endoreview.__main__ import main

    sys.exit(main())
