"""Site adaptation: continued pretraining from the bundled model on another site's unlabelled archive.

What ``endofm pretrain`` does by default, measured. Phantom colonoscopy videos of a second hospital (``--site``,
default ``site_b``: other colour balance, optics, field of view and overlay than the bundled model's training data)
are rendered twice: an unlabelled pretraining archive (cut into ``--clip-frames`` clips as ``endofm cut-clips``
does) and held-out probe videos cut into clips labelled polyp / normal. Per seed:

1. continue pretraining from the bundled backbone (``resources/demo_model``, the default start) on the archive with
   the full recipe at a low learning rate (``--lr``, per 256 clips: 1e-4 at batch 8 by default);
2. extract frozen CLS features of the probe clips with the bundled backbone ("before"), the continued teacher
   ("after"), a randomly initialised backbone of the same architecture and the clip's mean colour;
3. fit a k-NN (k=5, cosine) and a linear probe on the train videos (split by video, seeded) and report AUROC and
   balanced accuracy on the held-out videos (probes of ``benchmarks/pretrain_probe.py``).

Output: one JSON object per line (``pretrain`` epochs, a ``seed`` row per seed) and a ``summary`` with mean and
standard deviation over seeds of every figure and of ``knn_gain`` (after - before), naming the machine.
Defaults: 3 seeds, 128 archive videos of 64 frames cut into 512 clips of 16 frames, 8 epochs (512 steps of batch 8),
64 probe videos; about 15 minutes per seed on a 2-core CPU. ``--small``: one seed at tiny sizes in a few minutes
(checks every code path; the numbers mean nothing). Figures and the history are in docs/experiments/pretraining.md.

    python benchmarks/site_adaptation.py            # 3 seeds
    python benchmarks/site_adaptation.py --small
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pretrain_probe as probe  # (the phantom data and the probes, shared with that benchmark)
from common import benchmark_parser

from core_model.phantom.sites import SITES
from core_model.pretrain import load_config, train
from core_model.pretrain.data import read_clip_list
from core_model.pretrain.state import bundled_model_dir


def _archive(work: Path, n: int, frames: int, size: int, site: str, clip_frames: int, scale: float) -> Path:
    from core_model.pretrain.clips import cut_video

    videos = probe.make_videos(work / f"archive_{site}", n, 10_000, frames, size, scale, site)
    clips = work / f"archive_{site}_{n}v_{clip_frames}f"
    if not clips.is_dir():  # cut into a scratch folder first: an interrupted cut is never reused
        scratch = clips.with_name(clips.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        for v in videos:
            cut_video(v, scratch, clip_frames=clip_frames, fps=30.0, short_side=size)
        scratch.rename(clips)
    return clips


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, "one seed at tiny sizes (numbers meaningless)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--site", default="site_b", choices=sorted(SITES))
    ap.add_argument("--archive-videos", type=int, default=None)
    ap.add_argument("--probe-videos", type=int, default=None)
    ap.add_argument("--clip-frames", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.0032, help="per 256 clips (0.0032: 1e-4 at batch 8)")
    ap.add_argument("--size", type=int, default=96, help="global view and probe input side (locals: half)")
    ap.add_argument("--polyp-scale", type=float, default=2.5)
    ap.add_argument("--workdir", default=None, help="keep videos and runs here (default: a temporary folder)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra pretraining config")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # small tensors on a shared 2-core CPU: one thread is several times faster
    small = args.small
    epochs = args.epochs or (1 if small else 8)
    n_archive = args.archive_videos or (4 if small else 128)
    n_probe = args.probe_videos or (6 if small else 64)
    seeds = 1 if small else args.seeds
    frames = 32 if small else 64
    size, gsize = 128, args.size
    start = bundled_model_dir()
    overrides = [  # the bundled backbone decides the architecture; the probe benchmark's stable settings
        f"model.init_checkpoint={start}",
        *probe.stable_settings(gsize),
        f"optim.epochs={epochs}",
        "optim.warmup_epochs=1",
        f"optim.lr={args.lr}",
        "optim.min_lr=1e-6",
        f"run.saveckp_freq={epochs + 1}",
        "run.num_threads=1",
        *args.overrides,
    ]
    t_start = time.perf_counter()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="site_adaptation_"))
    archive = _archive(work, n_archive, frames, size, args.site, args.clip_frames, args.polyp_scale)
    probe_videos = probe.make_videos(
        work / f"probe_{args.site}", n_probe, 20_000, frames, size, args.polyp_scale, args.site
    )
    clips = probe.probe_clips(probe_videos, clip_len=16, n_frames=4, size=gsize)
    y = clips["y"]
    n_clips = len(read_clip_list(archive))
    probe.emit(
        {
            "event": "data",
            "site": args.site,
            "archive_videos": n_archive,
            "archive_clips": n_clips,
            "probe_clips": int(len(y)),
            "polyp_clips": int(y.sum()),
            "seconds": time.perf_counter() - t_start,
        }
    )
    from core_model.models import create_model

    before_backbone = create_model("endofm_tiny", checkpoint=start)
    before = probe.features(before_backbone, clips["x"])
    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        train_v, _ = probe.split_by_video(len(probe_videos), seed)
        tr = np.array([v in train_v for v in clips["video"]])
        torch.manual_seed(1000 + seed)
        feats = {
            "before": before,
            "random_init": probe.features(create_model("endofm_tiny"), clips["x"]),
            "mean_colour": probe.mean_colour(clips["x"]),
        }
        losses: list[float] = []
        cfg = load_config(None, [*overrides, f"data.path={archive}", f"run.seed={seed}"])
        result = train(cfg, work / f"run_seed{seed}", emit=_EpochLog(losses, seed))
        after = create_model("endofm_tiny", checkpoint=result.export_dir / "model")
        feats["after"] = probe.features(after, clips["x"])
        row: dict[str, Any] = {
            "event": "seed",
            "seed": seed,
            "loss_first": losses[0],
            "loss_last": losses[-1],
        }
        for name, x in feats.items():
            row.update({f"{name}_{k}": v for k, v in probe.probe_all(x, y, tr).items()})
        row["knn_gain"] = row["after_knn_auroc"] - row["before_knn_auroc"]
        rows.append(row)
        probe.emit(row)

    summary: dict[str, Any] = {
        "event": "summary",
        "machine": probe.machine_name(),
        "site": args.site,
        "seeds": seeds,
        "epochs": epochs,
        "steps_per_seed": epochs * (n_clips // 8),
        "lr_at_batch_8": args.lr * 8 / 256,
        "seconds": time.perf_counter() - t_start,
    }
    for k in (k for k in rows[0] if k not in ("event", "seed")):
        vals = [r[k] for r in rows]
        summary[k] = {
            "mean": statistics.fmean(vals),
            "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
        }
    probe.emit(summary)
    return 0


class _EpochLog:
    """The run's ``emit``: keep each epoch's loss and print a ``pretrain`` line."""

    def __init__(self, losses: list[float], seed: int) -> None:
        self.losses, self.seed = losses, seed

    def __call__(self, e: dict[str, Any]) -> None:
        if e.get("event") == "epoch":
            self.losses.append(e["loss"])
            probe.emit({"event": "pretrain", "seed": self.seed, "epoch": e["epoch"], "loss": e["loss"]})


if __name__ == "__main__":
    sys.exit(main())
