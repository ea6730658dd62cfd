"""``endofm convert SRC -o OUT``: any Endo-FM checkpoint -> the project's model directory.

SRC is the official ``endo_fm.pth`` (or any pre-training ``checkpoint*.pth``), a flat backbone state dict, the
fine-tuned PolypDiag file (its linear classifier becomes a ``classification`` head, classes ``normal, abnormal``
unless ``--classes`` says otherwise), a ``.safetensors`` file or another model directory. The architecture is read
from the tensor shapes; the head count, which shapes do not reveal, comes from the named size with the same width and
depth (``endofm_base``: 12) or from ``--num-heads``. The converted model is run once on a random clip as a check.

Exit codes: 0 converted, 1 the checkpoint cannot be used (the message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="endofm convert",
        description="Convert an Endo-FM checkpoint (official endo_fm.pth, PolypDiag fine-tune, flat state dict, "
        ".safetensors or model directory) into the project's model directory (model.safetensors + model.json).",
        epilog="Exit codes: 0 converted, 1 the checkpoint cannot be used (the message says why), 2 bad arguments.",
    )
    p.add_argument("source", help="checkpoint file (.pth/.pth.tar/.safetensors) or model directory")
    p.add_argument("-o", "--out", required=True, help="output model directory (created)")
    p.add_argument("--model", help="named size to check against (endofm_base|endofm_small|endofm_tiny)")
    p.add_argument(
        "--num-heads", type=int, help="attention heads (needed when the width matches no named size)"
    )
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--mean", type=float, nargs=3, help="normalisation mean (RGB in [0, 1])")
    p.add_argument("--std", type=float, nargs=3, help="normalisation std")
    p.add_argument(
        "--frame-stride", type=int, help="frames between two sampled frames of a clip (default 32)"
    )
    p.add_argument(
        "--clip-stride", type=int, help="frames between consecutive clip starts (default half a span)"
    )
    p.add_argument(
        "--classes", nargs="+", help="class names of a PolypDiag classifier (default: normal abnormal)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument("--no-check", action="store_true", help="skip the test forward pass")
    return p


def infer_config(state, num_heads: int | None = None, model: str | None = None):
    """EndoFMConfig from backbone tensor shapes: :func:`core_model.loading.infer_config`."""
    from core_model.loading import infer_config as _infer

    return _infer(state, num_heads, model)


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(args: argparse.Namespace) -> Path:
    import torch

    from core_model import __version__
    from core_model.checkpoint import (
        META_FILE,
        CheckpointError,
        ModelMeta,
        load_backbone_state_dict,
        save_model_dir,
    )
    from core_model.contract import POLYPDIAG_OFFICIAL, OperatingPoint
    from core_model.loading import POLYPDIAG_CLASSES, official_pretrain_data
    from core_model.models.endofm import EndoFM

    src, out = Path(args.source), Path(args.out)
    if out.exists() and (out / META_FILE).exists() and not args.force:
        raise FileExistsError(f"{out} already holds a model; pass --force to overwrite it")
    if out.resolve() == src.resolve():
        raise FileExistsError(f"{out}: output and source are the same directory")
    state = load_backbone_state_dict(src)
    cfg, name = infer_config(state, args.num_heads, args.model)
    model = EndoFM(cfg)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{src}: tensor shapes do not form one {name} backbone: {exc}") from exc

    heads: dict = {}
    ops: dict = {}
    tensors = {k: v for k, v in model.state_dict().items()}
    data = official_pretrain_data(cfg.num_frames, cfg.img_size)
    if state.meta is not None:  # re-converting one of our directories keeps its settings and heads
        data, heads, ops = state.meta.data, dict(state.meta.heads), dict(state.meta.operating_points)
    if state.classifier is not None:
        # the official fine-tuned PolypDiag model is served as it was evaluated (reference §4.2, §5.1)
        data = POLYPDIAG_OFFICIAL.replace(num_frames=cfg.num_frames, img_size=cfg.img_size)
        classes = args.classes or POLYPDIAG_CLASSES
        n = int(state.classifier["weight"].shape[0])
        if len(classes) != n:
            raise CheckpointError(
                f"{src}: the classifier has {n} outputs but {len(classes)} class names were given"
            )
        heads["classification"] = {"classes": list(classes), "multi_label": False, "dropout": 0.0}
        ops["classification"] = OperatingPoint(positive=classes[-1], rule="mean", threshold=0.5)
        state.extra.update({"heads.classification.linear." + k: v for k, v in state.classifier.items()})
    if heads:  # task-model layout: backbone.* + heads.<task>.*
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
        tensors.update({k: v for k, v in state.extra.items() if k.startswith("heads.")})
    for key, value in (("mean", args.mean), ("std", args.std)):
        if value is not None:
            data = data.replace(**{key: tuple(value)})
    if args.frame_stride is not None:
        data = data.replace(frame_stride=args.frame_stride, sampling="stride", clips="sliding")
    if args.clip_stride is not None:
        data = data.replace(clip_stride=args.clip_stride, clips="sliding")
    provenance = {
        "source": str(src.resolve()),
        "source_sha256": _sha256(src),
        "source_layout": state.source,
        "converted_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tool": f"endofm convert (endoreview {__version__})",
    }
    if state.meta is not None:
        provenance["previous"] = state.meta.provenance
    meta = ModelMeta.for_config(cfg, name, data, heads, provenance)
    meta.operating_points = ops

    if not args.no_check:
        model.eval()
        t = max(1, min(cfg.num_frames, 8))
        x = torch.randn(
            1, cfg.in_chans, t, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0)
        )
        with torch.inference_mode():
            y = model(x)
        if not torch.isfinite(y).all():
            raise CheckpointError(f"{src}: the converted backbone produces non-finite outputs")
    save_model_dir(out, tensors, meta, fp16=args.fp16)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from core_model.checkpoint import CheckpointError

    try:
        out = convert(args)
    except (CheckpointError, FileExistsError) as exc:
        print(f"endofm convert: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"endofm convert: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"endofm convert: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"converted {args.source} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
