"""Frozen entry point for the model command line (PyInstaller)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from core_model.cli import main

    sys.exit(main())
