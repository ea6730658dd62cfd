"""Frozen entry point for the desktop app (PyInstaller)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from endoreview.__main__ import main

    sys.exit(main())
