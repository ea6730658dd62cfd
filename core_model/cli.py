"""``endofm``: the model command line. Each sub-command lives in its own module and is imported lazily,
so ``endofm --help`` is instant and a sub-command only pays for what it uses."""

from __future__ import annotations

import importlib
import logging
import os
import sys

# sub-command -> ("module", "function taking argv"), description
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("core_model.phantom.cli:main", "generate synthetic endoscopy videos with exact ground truth"),
    "convert": (
        "core_model.checkpoint_cli:main",
        "convert an Endo-FM checkpoint to the project's model format",
    ),
    "predict": ("core_model.inference.cli:main", "run a model over videos, JSON lines out"),
    "pretrain": ("core_model.pretrain.cli:main", "self-supervised pretraining (DINO-style, Endo-FM recipe)"),
    "cut-clips": ("core_model.pretrain.clips:main", "cut long videos into pretraining clips + CSV list"),
    "finetune": ("core_model.finetune.cli:main", "fine-tune heads/backbone on a training manifest"),
    "evaluate": ("core_model.finetune.evaluate_cli:main", "evaluate a model on a training manifest"),
    "calibrate": (
        "core_model.inference.calibrate:main",
        "choose a model's video-level operating point on validation videos; fit its out-of-domain reference",
    ),
}


def _usage() -> str:
    lines = ["usage: endofm <command> [options]", "", "commands:"]
    for name, (_, desc) in COMMANDS.items():
        lines.append(f"  {name:<10} {desc}")
    lines.append("")
    lines.append("endofm <command> --help for a command's options")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from core_model import __version__

        print(f"endofm {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"endofm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    mod_name, func_name = target.split(":")
    func = getattr(importlib.import_module(mod_name), func_name)
    rc = func(argv[1:])
    return int(rc or 0)


# Sub-commands whose process ends as soon as their output is flushed (``run``): a process that imported torch
# spends 0.3-1 s in interpreter finalisation (measured on the 2-core development machine), which is a tenth of
# ``endofm predict`` on a 10-second clip and does nothing for the user: every file is closed and every line flushed
# before the command returns.
FAST_EXIT = frozenset({"predict"})


def run(argv: list[str] | None = None) -> None:
    """The process entry point (``endofm`` and ``python -m core_model``): ``main`` and then the exit. In-process
    callers (tests, the app) call ``main``, which always returns."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rc = main(argv)
    if argv and argv[0] in FAST_EXIT:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
                pass
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":
    run()
