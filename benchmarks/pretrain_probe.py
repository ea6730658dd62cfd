"""Evidence that pretraining learns: DINO loss falls, and frozen features separate polyp from normal clips.

On phantom colonoscopy videos (``core_model.phantom``), for each seed:

1. pretrain ``endofm_tiny`` with the full recipe (``core_model.pretrain.train``; 2 global + 8 local views, DINO head,
   EMA teacher, per-parameter clipping) on a set of *pretraining* videos, recording the mean DINO loss per epoch;
2. cut a separate set of *probe* videos into clips labelled polyp (≥ half the frames show a polyp) or normal (none),
   split by video into train/test halves (seeded);
3. extract frozen CLS features with the pretrained teacher, with a randomly initialised backbone of the same
   architecture (seeded), and the clip's mean colour (RGB);
4. fit a k-NN (k=5, cosine) and a linear probe (L2 logistic regression on standardised features) on the train
   videos and report balanced accuracy and AUROC on the held-out videos, and each feature set's ``video_share``.

4b. the same probes on the teacher every ``--probe-every`` epochs (the curve), and on a backbone trained WITH labels
   (``--reference-model``, default the demo model): the probe's ceiling, which shows it can see polyps at all.

Output: one JSON object per line (``pretrain`` epochs, some with probe figures; per-seed ``probe`` rows) and a final
``summary`` with mean and standard deviation over seeds, naming the machine. Defaults: 128 pretraining videos,
30 epochs (480 steps of 8 clips per seed), 64 probe videos (426 clips), 3 seeds; 27 min on this 2-core CPU.
``--small`` is a one-minute smoke run of every code path (numbers meaningless). Videos are rendered at
``--polyp-scale`` (default 2.5: polyps of public-dataset size, median ~5 % of the frame) and at ``--site`` (the
acquisition site, ``core_model.phantom.sites``; ``site_b`` is a second hospital's equipment).

Settings. The defaults are the most stable found: BatchNorm in the head (``head.use_bn``, DINO's
``use_bn_in_head``), no DropPath, milder colour jitter (0.2/0.2/0.1, grayscale 0.1, values clamped), official
temperatures (0.04/0.1) and momentum (0.996), lr 5e-4 at batch 8. With them the loss falls steadily and never
collapses (960-step run: 5.5 -> 4.2). With the official jitter strength or a higher lr every run collapses to a
uniform output (loss back at ln(256) = 5.55) within 100-300 steps, BN head or not.

Measured (this 2-core CPU, polyp scale 2.5). The criterion is NOT met: the pretrained teacher's features separate
polyp from normal clips no better than a random-init backbone or the mean colour, while the same probes on a
backbone trained with labels reach AUROC 0.8 (so the probe can see polyps). Linear / k-NN AUROC:

- defaults, 3 seeds (480 steps each, 27 min), mean +- std: loss 5.59 +- 0.02 -> 5.05 +- 0.13; pretrained
  0.58 +- 0.04 / 0.48 +- 0.04, random init 0.63 +- 0.04 / 0.52 +- 0.04, mean colour 0.57 +- 0.04 / 0.44 +- 0.06,
  labelled reference 0.83 +- 0.00 / 0.80 +- 0.01; the curve (epochs 10 and 20) stays at the final level;
- one 960-step run of the defaults, probed every 240 steps: linear 0.60, 0.59, 0.59, 0.58 (random init 0.63);
- 64-px globals at batch 64 (24 clips/s instead of 7), 190 steps: 0.58 (random init 0.57-0.59);
- each view standardised per channel (cancels brightness/contrast jitter and a video's colour; tried by patching,
  not kept) with the official jitter: collapsed by step 320, 0.55-0.60 (random init on the same input 0.67);
- earlier sessions (20-96 steps, no BN head, polyp scale 1 and 2.5): 0.45-0.66 for all three;
- ``--clip-frames 16`` (the 128 videos cut into 512 clips the way ``endofm cut-clips`` does, so a polyp is in all or
  none of a clip's frames and the recipe no longer asks for invariance to a polyp coming into view), 512 steps:
  0.64 at every probe point (128, 256, 384 steps); random init 0.66, mean colour 0.61; k-NN 0.47-0.52;
- the same with wider crops (globals 0.7-1, locals 0.25-0.5 of the frame, so most views contain the polyp), 384
  steps: 0.63 (random init 0.66);
- the same with polyp scale 4 (polyps twice as wide), 384 steps: 0.79, random init 0.78 (mean colour 0.55,
  labelled reference 0.95);
- the same with the official jitter strength (0.4/0.4/0.2, grayscale 0.2) and a sharper teacher (0.02), 384 steps:
  no collapse (loss 5.34 -> 4.89), 0.63 (random init 0.66);
- other poolings of the same frozen tokens (CLS, patch mean, patch max, patch std, all together) change every
  figure by a few hundredths and never put the pretrained teacher above random init.

- fifth session, same 512 clips, each figure the mean over the 3 train/test splits (random init 0.64 / 0.52):
  no local views at all (2 globals, so 2 view pairs instead of 18), 768 steps: 0.60 / 0.48 (flat from step 256);
  64-px globals and 32-px locals, 768 steps: 0.56 / 0.48; a DINO head of 4096 prototypes, teacher temperature 0.04
  or 0.02, 384 steps: 0.58-0.59 / 0.47-0.50; blur and solarisation working (``augment.blur_solarize``) with the
  official jitter strength and a 0.02 teacher, 384 steps: 0.58 / 0.48; the same with blur (sigma 1-2.5) on every
  view: 0.60 / 0.50;
- ``video_share`` (the share of the feature variance explained by which video a clip comes from; the polyp label
  varies *within* videos): random init 0.65, after pretraining 0.84-0.91 in every setting above, the labelled
  reference 0.53;
- continued pretraining from the labelled reference (``--set model.init_checkpoint=resources/demo_model``), 192
  steps: 0.83 / 0.80, the reference itself 0.83 / 0.80, video share 0.53 -> 0.55. The recipe keeps polyp features a
  backbone already has; it does not find them from scratch at this budget;
- long videos cut into many clips each (the official regime), 512 clips of 16 frames from 32 videos of 256 frames
  (polyp in 15 % of the frames), 384 steps: 0.59 / 0.49, video share 0.88; from 64 videos of 128 frames, 192
  steps: 0.60 / 0.50, video share 0.84.

- sixth session (same 512 clips, 512 steps, means over 3 splits): every block's own features (CLS, patch mean,
  patch max of blocks 1-6, DINO's "last 4 blocks" concatenation for small ViTs): the pretrained teacher is at
  or below random init in every block (linear 0.59-0.64 against 0.62-0.69), and its video share is already
  0.84 after the first block; ``endofm_tiny`` with 8-pixel patches (4x the tokens, a polyp spans ~3 patches;
  ``model.overrides``), loss 5.49 -> 4.11 (lower than any 16-pixel run): 0.61 +- 0.08 / 0.46, random init 0.60
  / 0.51, video share 0.73 -> 0.87;
- another hospital (``--site site_b``: warmer colour, softer optics, round field, other overlay), pretraining
  continued from the labelled reference on that site's unlabelled clips, 3 seeds of 256 steps (loss 5.48 ->
  5.39): linear 0.78 +- 0.03 -> 0.76 +- 0.03, k-NN 0.66 +- 0.02 -> 0.71 +- 0.01, higher in every seed (random
  init 0.62 / 0.58, mean colour 0.58 / 0.50), the one improvement over a starting point seen in any run; but
  it does not last: with a 512-step schedule the loss climbs back towards uniform (5.38 at step 128, 5.46 at
  512) and the k-NN returns to the start (0.69 at step 256, 0.66 at 512; linear 0.74); at a 5x lower lr (1e-4
  at batch 8, ``--set optim.lr=0.0032``) the gain holds: 3 seeds of 512 steps (loss 5.59 -> 5.44), k-NN 0.66
  +- 0.02 -> 0.73 +- 0.01 (+0.07, +0.04, +0.09), linear 0.78 +- 0.03 -> 0.76 +- 0.02. The start was trained
  with labels, so this shows adaptation of a backbone to a new site's unlabelled archive, not polyps found
  from scratch.

Diagnosis. (0) Pretraining leaves the probe at or slightly *below* random init in every setting, with or without
local views, crops of any size, blur, colour jitter of any strength, or head size. What it learns is measured by
``video_share``: the features come to say which video a clip is from. For an instance-level objective that is the
best cue there is: every crop, every frame and every colour-jittered view of a clip shares its video's mucosal
texture, fold geometry and lighting, while a polyp covering ~5 % of the frame is in only some views and changes
within a video. Polyp features would only pay once the video cues are exhausted, which takes far longer than this
budget. (1) An untrained backbone gives nearly the same output for every phantom clip (CLS cosine 0.99), so
the centred teacher starts uniform and its only variation is the augmentation noise; strong colour jitter with the
official 0.04 teacher then drives runs to the uniform collapse (a 0.02 teacher avoids it). (2) k-NN AUROC falls
below 0.5 because neighbours from other videos share texture and colour, not polyps. (3) Scale: this budget is
~4-8 thousand clips seen per seed; DINO from scratch is usually trained on millions, and the official Endo-FM run
starts from Kinetics-pretrained weights, which cannot be had offline (continued pretraining above shows that a
starting point with object features is kept). The script runs unchanged on a GPU
(``--set run.device=cuda --set data.batch_size_per_gpu=64 --pretrain-videos 1024 --epochs 100``), which is where
the next attempt belongs.

    python benchmarks/pretrain_probe.py               # 3 seeds
    python benchmarks/pretrain_probe.py --small
    python benchmarks/pretrain_probe.py --site site_b --clip-frames 16 --set model.init_checkpoint=resources/demo_model
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model.contract import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from core_model.phantom.sites import SITES  # noqa: E402
from core_model.pretrain import load_config, train  # noqa: E402
from core_model.pretrain.data import read_clip_list  # noqa: E402

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)


def machine_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


# ============================================================================================ data


def make_videos(
    folder: Path, n: int, seed0: int, frames: int, size: int, polyp_scale: float, site: str = "default"
) -> list[Path]:
    from core_model.phantom import generate_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        name = f"v{seed0 + k:05}"
        if (folder / f"{name}.mp4").is_file() and (folder / f"{name}.json").is_file():
            paths.append(folder / f"{name}.mp4")  # generated by an earlier run in the same workdir
        else:
            paths.append(
                generate_video(
                    folder,
                    name,
                    seed=seed0 + k,
                    n_frames=frames,
                    size=size,
                    polyp_scale=polyp_scale,
                    site=site,
                )
            )
    return paths


def probe_clips(videos: list[Path], clip_len: int, n_frames: int, size: int) -> dict[str, Any]:
    """Clips of ``clip_len`` consecutive frames, ``n_frames`` sampled; label 1 = polyp in ≥ half, 0 = none."""
    from core_model.phantom import load_ground_truth
    from core_model.video import VideoReader

    xs, ys, vids = [], [], []
    for vi, path in enumerate(videos):
        gt = load_ground_truth(path.with_suffix(".json"))
        has = np.asarray(gt.frame_has_polyp, dtype=bool)
        with VideoReader(path) as r:
            n = len(r)
            for start in range(0, n - clip_len + 1, clip_len // 2):
                frac = has[start : start + clip_len].mean()
                if 0 < frac < 0.5:
                    continue  # ambiguous: the polyp is only partly in the clip
                idx = np.linspace(start, start + clip_len - 1, n_frames).round().astype(int).tolist()
                frames = torch.from_numpy(r.get_batch(idx)).permute(3, 0, 1, 2).float() / 255  # [3, T, H, W]
                frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
                xs.append(frames)
                ys.append(int(frac >= 0.5))
                vids.append(vi)
    return {"x": torch.stack(xs), "y": np.array(ys), "video": np.array(vids)}


# ============================================================================================ probes


@torch.no_grad()
def features(backbone: torch.nn.Module, x: torch.Tensor, batch: int = 16) -> np.ndarray:
    """Frozen features: final-norm CLS concatenated with the mean of the patch tokens (DINO's linear-eval recipe
    for ViT-B) -> ``[N, 2D]``."""
    backbone.eval()
    out = []
    for i in range(0, len(x), batch):
        tokens = backbone.forward_features((x[i : i + batch] - MEAN) / STD)  # [b, 1 + N*T, D]
        out.append(torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))
    return torch.cat(out).numpy()


def mean_colour(x: torch.Tensor) -> np.ndarray:
    return x.mean(dim=(2, 3, 4)).numpy()  # [N, 3]


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    accs = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    return float(np.mean(accs))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def knn_probe(xtr, ytr, xte, yte, k: int = 5) -> dict[str, float]:
    a = F.normalize(torch.from_numpy(xtr).float(), dim=1)
    b = F.normalize(torch.from_numpy(xte).float(), dim=1)
    sim = b @ a.T  # [Nte, Ntr]
    top = sim.topk(min(k, len(ytr)), dim=1).indices.numpy()
    score = ytr[top].mean(axis=1)
    return {"bacc": balanced_accuracy(yte, (score >= 0.5).astype(int)), "auroc": auroc(yte, score)}


def linear_probe(xtr, ytr, xte, yte, wd: float = 1e-2) -> dict[str, float]:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = torch.from_numpy((xtr - mu) / sd).float()
    b = torch.from_numpy((xte - mu) / sd).float()
    y = torch.from_numpy(ytr).float()
    pos_weight = (len(y) - y.sum()) / max(float(y.sum()), 1.0)  # balanced classes
    w = torch.zeros(a.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a @ w + bias, y, pos_weight=pos_weight) + wd * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        score = (b @ w + bias).numpy()
    return {"bacc": balanced_accuracy(yte, (score > 0).astype(int)), "auroc": auroc(yte, score)}


def video_share(x: np.ndarray, video: np.ndarray) -> float:
    """Share of the (standardised) feature variance explained by which video a clip comes from: 1 = the features
    only say which video it is, 0 = nothing about it. The polyp label varies *within* videos, so features that
    pretraining spends on telling videos apart do not help the probe."""
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    within = sum(float(((z[video == v] - z[video == v].mean(0)) ** 2).sum()) for v in np.unique(video))
    return 1.0 - within / float((z**2).sum())


def split_by_video(n_videos: int, seed: int) -> tuple[set[int], set[int]]:
    order = np.random.default_rng(seed).permutation(n_videos)
    half = n_videos // 2
    return set(order[:half].tolist()), set(order[half:].tolist())


# ============================================================================================ main


def probe_all(x: np.ndarray, y: np.ndarray, tr: np.ndarray) -> dict[str, float]:
    out = {}
    for probe, fn in (("knn", knn_probe), ("linear", linear_probe)):
        r = fn(x[tr], y[tr], x[~tr], y[~tr])
        out[f"{probe}_bacc"], out[f"{probe}_auroc"] = r["bacc"], r["auroc"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="one-minute smoke run (numbers meaningless)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--probe-every", type=int, default=None, help="also probe the teacher every N epochs")
    ap.add_argument("--pretrain-videos", type=int, default=None)
    ap.add_argument("--probe-videos", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="keep videos and runs here (default: a temporary folder)")
    ap.add_argument("--size", type=int, default=96, help="global view and probe input side (locals: half)")
    ap.add_argument(
        "--polyp-scale", type=float, default=2.5, help="phantom polyp size (2.5: public-dataset sizes)"
    )
    ap.add_argument(
        "--site",
        default="default",
        choices=sorted(SITES),
        help="phantom acquisition site of every video (core_model.phantom.sites), e.g. site_b: another hospital",
    )
    ap.add_argument(
        "--reference-model",
        default=str(Path(__file__).resolve().parents[1] / "resources" / "demo_model"),
        help="an endofm_tiny trained WITH labels (default: the demo model): the probe's ceiling; '' to skip",
    )
    ap.add_argument(
        "--clip-frames",
        type=int,
        default=0,
        help="cut the pretraining videos into clips of this many frames (endofm cut-clips) and pretrain on those",
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra pretraining config")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # small tensors on a shared 2-core CPU: one thread is several times faster
    small = args.small
    epochs = args.epochs or (1 if small else 30)
    probe_every = args.probe_every or max(epochs // 3, 1)
    n_pre = args.pretrain_videos or (8 if small else 128)
    n_probe = args.probe_videos or (6 if small else 64)
    seeds = 1 if small else args.seeds
    size, frames = 128, 64
    gsize, lsize = args.size, args.size // 2
    # endofm_tiny with small globals (2/4 frames) and half-size locals, sized for a 2-core CPU. The settings are
    # the most stable found (see the docstring): a BatchNorm head, no DropPath, milder colour jitter, the official
    # temperatures and momentum, lr 5e-4 at batch 8.
    overrides = [
        "model.arch=endofm_tiny",
        "model.drop_path_rate=0",
        "head.out_dim=256",
        "head.hidden_dim=512",
        "head.bottleneck_dim=128",
        "head.use_bn=true",
        f"views.global_size={gsize}",
        f"views.local_size={lsize}",
        "views.global_frames=[2, 4]",
        "views.local_frames=[1, 1, 1, 1, 2, 2, 2, 2]",
        "augment.official_quirks=false",
        "augment.brightness=0.2",
        "augment.contrast=0.2",
        "augment.saturation=0.1",
        "augment.grayscale_p=0.1",
        "data.batch_size_per_gpu=8",
        "data.num_workers=1",
        "data.pin_memory=false",
        f"optim.epochs={epochs}",
        f"optim.warmup_epochs={max(epochs // 15, 1)}",
        "optim.lr=0.016",  # per 256 clips: 5e-4 at batch 8
        "optim.min_lr=1e-6",
        f"run.saveckp_freq={epochs + 1}",
        "run.num_threads=1",
        "run.export_every_epoch=true",
        *args.overrides,
    ]
    t_start = time.perf_counter()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pretrain_probe_"))
    tag = f"s{args.polyp_scale:g}" + ("" if args.site == "default" else f"_{args.site}")
    pre_dir = work / f"pretrain_videos_{tag}"
    pre_videos = make_videos(pre_dir, n_pre, 10_000, frames, size, args.polyp_scale, args.site)
    data_path = pre_dir
    if args.clip_frames:
        from core_model.pretrain.clips import cut_video

        data_path = work / f"pretrain_clips_{tag}_{n_pre}v_{args.clip_frames}f"
        if not data_path.is_dir():  # cut into a scratch folder first: an interrupted cut is never reused
            scratch = data_path.with_name(data_path.name + ".partial")
            shutil.rmtree(scratch, ignore_errors=True)
            for v in pre_videos:
                cut_video(v, scratch, clip_frames=args.clip_frames, fps=30.0, short_side=size)
            scratch.rename(data_path)
    probe_videos = make_videos(
        work / f"probe_videos_{tag}", n_probe, 20_000, frames, size, args.polyp_scale, args.site
    )
    n_clips = len(read_clip_list(data_path))
    clips = probe_clips(probe_videos, clip_len=16, n_frames=4, size=gsize)
    y = clips["y"]
    emit(
        {
            "event": "data",
            "pretrain_videos": len(pre_videos),
            "pretrain_clips": n_clips,
            "probe_videos": len(probe_videos),
            "probe_clips": int(len(y)),
            "polyp_clips": int(y.sum()),
            "seconds": time.perf_counter() - t_start,
        }
    )
    from core_model.models import create_model

    reference = None
    if args.reference_model and (Path(args.reference_model) / "model.json").is_file():
        reference = features(create_model("endofm_tiny", checkpoint=args.reference_model), clips["x"])

    rows = []
    for seed in range(seeds):
        train_v, _ = split_by_video(len(probe_videos), seed)
        tr = np.array([v in train_v for v in clips["video"]])
        torch.manual_seed(1000 + seed)
        baselines = {
            "random_init": features(create_model("endofm_tiny"), clips["x"]),
            "mean_colour": mean_colour(clips["x"]),
        }
        if reference is not None:
            baselines["labelled_reference"] = reference
        losses: list[float] = []
        run_dir = work / f"run_seed{seed}"

        def on_event(e: dict[str, Any], _losses=losses, _seed=seed, _tr=tr, _run=run_dir) -> None:
            if e.get("event") != "epoch":
                return
            _losses.append(e["loss"])
            row = {"event": "pretrain", "seed": _seed, "epoch": e["epoch"], "loss": e["loss"]}
            if (e["epoch"] + 1) % probe_every == 0 and e["epoch"] + 1 < epochs:
                teacher = create_model("endofm_tiny", checkpoint=_run / "export" / "model")
                row.update(probe_all(features(teacher, clips["x"]), y, _tr))
            emit(row)

        cfg = load_config(None, [*overrides, f"data.path={data_path}", f"run.seed={seed}"])
        result = train(cfg, run_dir, emit=on_event)
        feats = {
            "pretrained": features(
                create_model("endofm_tiny", checkpoint=result.export_dir / "model"), clips["x"]
            )
        }
        feats.update(baselines)
        row: dict[str, Any] = {
            "event": "probe",
            "seed": seed,
            "loss_first": losses[0],
            "loss_last": losses[-1],
        }
        row["train_clips"], row["test_clips"] = int(tr.sum()), int((~tr).sum())
        for name, x in feats.items():
            row.update({f"{name}_{k}": v for k, v in probe_all(x, y, tr).items()})
            row[f"{name}_video_share"] = video_share(x, clips["video"])
        rows.append(row)
        emit(row)

    summary: dict[str, Any] = {
        "event": "summary",
        "machine": machine_name(),
        "seeds": seeds,
        "epochs": epochs,
        "steps_per_seed": epochs * (n_clips // 8),
        "pretrain_videos": n_pre,
        "probe_videos": n_probe,
        "seconds": time.perf_counter() - t_start,
    }
    keys = [k for k in rows[0] if k not in ("event", "seed", "train_clips", "test_clips")]
    for k in keys:
        vals = [r[k] for r in rows]
        summary[k] = {
            "mean": statistics.fmean(vals),
            "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
        }
    emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
