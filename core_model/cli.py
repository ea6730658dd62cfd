"""``endofm``: the model command line. Each sub-command lives in its own module and is imported lazily,
so ``endofm --help`` is instant and a sub-command only pays for what it uses."""

from __future__ import annotations

import importlib
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


if __name__ == "__main__":
    sys.exit(main())
