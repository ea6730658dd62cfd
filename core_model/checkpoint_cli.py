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
import math
import sys
from pathlib import Path

log = logging.getLogger(__name__)

POLYPDIAG_CLASSES = ["normal", "abnormal"]  # label 1 (the F1 positive class) is the abnormal video


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
    """EndoFMConfig from backbone tensor shapes (+ the head count from a named size or ``num_heads``)."""
    from core_model.checkpoint import CheckpointError
    from core_model.models.config import MODEL_CONFIGS, EndoFMConfig

    dim = int(state["cls_token"].shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    w = state["patch_embed.proj.weight"]  # [D, C, p, p]
    patch, in_chans = int(w.shape[-1]), int(w.shape[1])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    fields = dict(
        embed_dim=dim,
        depth=depth,
        patch_size=patch,
        in_chans=in_chans,
        img_size=grid * patch,
        num_frames=int(state["time_embed"].shape[1]),
        mlp_ratio=hidden / dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )
    candidates = [model] if model else list(MODEL_CONFIGS)
    for name in candidates:
        if name not in MODEL_CONFIGS:
            raise ValueError(f"unknown model {name!r}; available: {sorted(MODEL_CONFIGS)}")
        base = MODEL_CONFIGS[name]
        if (base.embed_dim, base.depth) == (dim, depth):
            heads = num_heads or base.num_heads
            cfg = base.replace(**fields, num_heads=heads)
            return cfg, name if cfg == base else f"{name}-variant"
        if model:
            raise CheckpointError(
                f"checkpoint has width {dim} and depth {depth}, but {name} is {base.embed_dim}/{base.depth}"
            )
    if not num_heads:
        raise CheckpointError(
            f"width {dim} / depth {depth} matches no named size, and the head count cannot be read from the "
            "weights: pass --num-heads"
        )
    return EndoFMConfig(**fields, num_heads=num_heads), "custom"


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
    from core_model.models.config import POLYPDIAG_PREPROCESS
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

    pre: dict = {}
    heads: dict = {}
    tensors = {k: v for k, v in model.state_dict().items()}
    if state.meta is not None:  # re-converting one of our directories keeps its settings and heads
        pre, heads = dict(state.meta.preprocess), dict(state.meta.heads)
    if state.classifier is not None:
        pre = {k: POLYPDIAG_PREPROCESS[k] for k in ("mean", "std", "frame_stride")}
        classes = args.classes or POLYPDIAG_CLASSES
        n = int(state.classifier["weight"].shape[0])
        if len(classes) != n:
            raise CheckpointError(
                f"{src}: the classifier has {n} outputs but {len(classes)} class names were given"
            )
        heads["classification"] = {"classes": list(classes), "multi_label": False, "dropout": 0.0}
        state.extra.update({"heads.classification.linear." + k: v for k, v in state.classifier.items()})
    if heads:  # task-model layout: backbone.* + heads.<task>.*
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
        tensors.update({k: v for k, v in state.extra.items() if k.startswith("heads.")})
    for key, value in (("mean", args.mean), ("std", args.std), ("frame_stride", args.frame_stride)):
        if value is not None:
            pre[key] = value
    if args.clip_stride is not None:
        pre["clip_stride"] = args.clip_stride
    provenance = {
        "source": str(src.resolve()),
        "source_sha256": _sha256(src),
        "source_layout": state.source,
        "converted_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tool": f"endofm convert (endoreview {__version__})",
    }
    if state.meta is not None:
        provenance["previous"] = state.meta.provenance
    meta = ModelMeta.for_config(cfg, name, pre, heads, provenance)

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
