"""``endofm phantom OUT_DIR --videos N``: write synthetic colonoscopy videos, their ground truth and a manifest."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from core_model.phantom.sites import SITES

    p = argparse.ArgumentParser(
        prog="endofm phantom",
        description="Generate synthetic colonoscopy videos (<name>.mp4 + <name>.json ground truth) and "
        "OUT_DIR/manifest.json (a training manifest listing every video with dense labels).",
    )
    p.add_argument("out_dir", type=Path, help="output folder (created if missing)")
    p.add_argument("--videos", type=int, default=8, help="number of videos (default 8)")
    p.add_argument("--frames", type=int, default=64, help="frames per video (default 64)")
    p.add_argument(
        "--size", type=int, default=256, help="frame width and height in pixels, even (default 256)"
    )
    p.add_argument(
        "--site", default="default", help=f"acquisition site style: {', '.join(SITES)}, or 'mixed'"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the first video; video k uses seed + k")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument(
        "--polyp-scale",
        type=float,
        default=1.0,
        help="multiply every polyp's size (default 1: small polyps, median about 1%% of the frame; "
        "2.5: sizes like the public polyp datasets, median about 5%%)",
    )
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of videos in the val split")
    p.add_argument("--test-fraction", type=float, default=0.0, help="fraction of videos in the test split")
    p.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also write a contact sheet PNG (frames of the first videos, outlined)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core_model.data.manifest import TrainingManifest, assign_splits, save_manifest
    from core_model.phantom.generate import generate_video, manifest_video
    from core_model.phantom.groundtruth import load_ground_truth
    from core_model.phantom.render import POLYP_SCALE_RANGE
    from core_model.phantom.sites import SITES

    if args.videos < 1:
        print("endofm phantom: --videos must be at least 1", file=sys.stderr)
        return 2
    if args.site != "mixed" and args.site not in SITES:
        print(
            f"endofm phantom: unknown site {args.site!r} (known: {', '.join(SITES)}, mixed)", file=sys.stderr
        )
        return 2
    low, high = POLYP_SCALE_RANGE
    if not low <= args.polyp_scale <= high:
        print(f"endofm phantom: --polyp-scale must be between {low:g} and {high:g}", file=sys.stderr)
        return 2
    if args.size < 32 or args.size % 2 or args.frames < 1:
        print("endofm phantom: --size must be an even number >= 32 and --frames >= 1", file=sys.stderr)
        return 2
    out: Path = args.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"endofm phantom: cannot create {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    site_names = list(SITES)
    videos = []
    t0 = time.perf_counter()
    for k in range(args.videos):
        seed = args.seed + k
        site = site_names[k % len(site_names)] if args.site == "mixed" else args.site
        name = f"phantom_{seed:05d}"
        video = generate_video(
            out,
            name,
            seed,
            n_frames=args.frames,
            size=args.size,
            site=site,
            fps=args.fps,
            polyp_scale=args.polyp_scale,
        )
        gt = load_ground_truth(out / f"{name}.json")
        videos.append(manifest_video(gt, name, video.name))
        print(
            json.dumps(
                {
                    "event": "progress",
                    "done": k + 1,
                    "total": args.videos,
                    "video": video.name,
                    "site": site,
                    "label": gt.video_label,
                    "segments": [[s, e] for s, e, _ in gt.segments],
                }
            ),
            flush=True,
        )
    videos = assign_splits(
        videos, val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed
    )
    manifest = TrainingManifest(
        videos=tuple(videos),
        classes={
            "video": ("normal", "abnormal"),
            "segment": ("polyp",),
            "mask": ("polyp",),
            "box": ("polyp",),
        },
        source={
            "generator": "endofm phantom",
            "seed": args.seed,
            "site": args.site,
            "size": args.size,
            "polyp_scale": args.polyp_scale,
        },
    )
    path = save_manifest(manifest, out / "manifest.json")
    if args.sheet is not None:
        from core_model.phantom.sheet import contact_sheet, save_contact_sheet

        sites = site_names if args.site == "mixed" else [args.site]
        seeds = [args.seed + k for k in range(min(args.videos, 4))]
        sheet = contact_sheet(seeds, sites, n_frames=args.frames, size=args.size, outline=True)
        save_contact_sheet(args.sheet, sheet)
    print(
        json.dumps(
            {
                "event": "done",
                "manifest": str(path),
                "videos": args.videos,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
