"""``endofm predict VIDEO|FOLDER|MANIFEST ... --model DIR --out preds.jsonl``: run a model over videos, JSON lines out.

Inputs (one or more):
- a video file, or an image-sequence folder (a folder with no video files in it);
- a folder of video files (mp4/mov/mkv/avi/webm/m4v/mpg/mpeg, natural order, not recursive);
- a training manifest (``*.json``, ``core_model.data.manifest``): its videos (``--split`` to pick one split);
- a list (``*.txt``): one video path per line (relative paths are relative to the list; ``#`` starts a comment).

Archive mode (``--out-dir DIR``, ``core_model.inference.archive``): one output file per video, finished videos
skipped on a rerun, and under ``torchrun`` each process takes its own share of the videos.

Output: one JSON object per line (``--out FILE``, or ``-`` / nothing for stdout), flushed line by line:
the ``Predictor`` events (``video_start``, ``frame``, ``progress``, ``video_done``, ``cancelled``, ``error``; see
``core_model.inference.predictor``) and a final ``{"event": "done", "videos", "failed", "frames", "seconds"}``.
With ``--out FILE`` the non-frame events are also printed to stdout, so a parent process can follow progress.

Exit status: 0 when every video was predicted; 1 when some video failed (an ``error`` event names it and the reason,
the others still run); 2 for a bad model or bad arguments (an ``error`` event with ``"video": null``); 130 when
interrupted. Problems are reported as one readable line on stderr, never a bare traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"}


class InputError(ValueError):
    pass


def parse_frames(spec: str) -> list[int]:
    """``"0,10,20:30,100:200:10"`` -> frame indices (``a:b[:step]`` is Python's range, b exclusive)."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                if len(bits) not in (2, 3) or (len(bits) == 3 and bits[2] < 1):
                    raise ValueError
                out.extend(range(*bits))
            else:
                out.append(int(part))
        except ValueError:
            raise InputError(f"--frames: cannot read {part!r} (use e.g. 0,10,20:30 or 0:1000:25)") from None
    if not out or min(out) < 0:
        raise InputError(f"--frames: {spec!r} gives no valid (non-negative) frame index")
    return sorted(set(out))


def _natural_key(p: Path):
    from core_model.video import natural_key

    return natural_key(p.name)


def expand_inputs(inputs: list[str], split: str | None = None) -> list[str]:
    """The videos the inputs name, in order (see the module docstring). Raises ``InputError``."""
    videos: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_file() and p.suffix.lower() == ".txt":  # a list of videos, one path per line (relative to it)
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{p}: cannot read the video list ({exc})") from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    videos.append(os.fspath(q if q.is_absolute() else p.parent / q))
        elif p.is_file() and p.suffix.lower() == ".json":
            from core_model.data.manifest import ManifestError, load_manifest

            try:
                manifest = load_manifest(p)
            except ManifestError as exc:
                raise InputError(str(exc)) from None
            chosen = manifest.videos if split is None else manifest.split(split)
            videos.extend(os.fspath(manifest.resolve_path(v)) for v in chosen)
        elif p.is_dir():
            files = sorted(
                (f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS),
                key=_natural_key,
            )
            videos.extend(os.fspath(f) for f in files) if files else videos.append(os.fspath(p))
        else:
            videos.append(os.fspath(p))  # missing/bad files become an error event for that video
    return videos


class _Sink:
    """Writes events as JSON lines; mirrors non-frame events to stdout when the output is a file."""

    def __init__(self, out: str | None):
        self._to_stdout = out in (None, "-")
        if self._to_stdout:
            self._fh: TextIO = sys.stdout
        else:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(out, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        self._fh.write(line + "\n")
        self._fh.flush()
        if not self._to_stdout and event.get("event") != "frame":
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        if not self._to_stdout:
            self._fh.close()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="endofm predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", metavar="VIDEO|FOLDER|MANIFEST")
    ap.add_argument("--model", required=True, help="model directory (model.safetensors + model.json)")
    ap.add_argument("--out", default="-", help="JSON-lines output file ('-': stdout)")
    ap.add_argument(
        "--out-dir",
        default=None,
        help="archive mode: one JSON-lines file per video in this folder, finished videos skipped on a rerun, "
        "videos shared between torchrun processes (core_model.inference.archive)",
    )
    ap.add_argument("--split", default=None, help="manifest inputs: only videos of this split")
    ap.add_argument("--frames", default=None, help="only these frames, e.g. 0,10,20:30 or 0:1000:25")
    ap.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="clips per forward pass (default 16 on a GPU, 4 on the CPU)",
    )
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    ap.add_argument("--no-amp", action="store_true", help="fp32 on the GPU (default: bf16 autocast)")
    ap.add_argument(
        "--frame-stride", type=int, default=None, help="override: frames between samples in a clip"
    )
    ap.add_argument("--clip-stride", type=int, default=None, help="override: frames between clip starts")
    ap.add_argument("--box-threshold", type=float, default=0.1, help="lowest box score written (default 0.1)")
    ap.add_argument("--max-boxes", type=int, default=20, help="most boxes written per frame (default 20)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for the model (default: torch's, one per core; 1 on a busy machine)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="CPU: batches in the model at once, each in its own thread with threads/workers intra-op threads "
        "(default: min(threads, 4))",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    # Before torch loads OpenMP: idle OpenMP workers sleep instead of spinning. On a busy CPU (other processes, the
    # decoder thread) spinning workers made the demo model ~7x slower per clip (measured at load 6 on 2 cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        sink = _Sink(args.out)
    except OSError as exc:
        print(f"endofm predict: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    def fail(message: str, code: int) -> int:
        sink.emit({"event": "error", "video": None, "message": message})
        sink.emit({"event": "done", "videos": 0, "failed": 0, "frames": 0, "seconds": 0.0})
        print(f"endofm predict: {message}", file=sys.stderr)
        return code

    try:
        try:
            frames = parse_frames(args.frames) if args.frames else None
            videos = expand_inputs(args.inputs, args.split)
            if (args.batch_size is not None and args.batch_size < 1) or args.max_boxes < 0:
                raise InputError("--batch-size must be >= 1 and --max-boxes >= 0")
            if args.workers is not None and args.workers < 1:
                raise InputError("--workers must be >= 1")
        except InputError as exc:
            return fail(str(exc), 2)
        if args.threads is not None:
            if args.threads < 1:
                return fail("--threads must be >= 1", 2)
            import torch

            torch.set_num_threads(args.threads)
        if args.out_dir:
            return _archive(args, videos, frames, fail)
        predictor = _load_predictor(args, background=True)
        if isinstance(predictor, str):
            return fail(predictor, 2)
        from core_model.inference.predictor import ModelLoadError

        failed = n_frames = 0
        for video in videos:
            ok = True
            try:
                for event in predictor.predict_video(video, frames=frames):
                    kind = event["event"]
                    if kind == "frame":
                        n_frames += 1
                    elif kind == "error":
                        ok = False
                        print(f"endofm predict: {event['message']}", file=sys.stderr)
                    sink.emit(event)
            except ModelLoadError as exc:  # the weights, read while the first video started decoding
                return fail(f"cannot load model {args.model}: {exc}", 2)
            except Exception as exc:  # a model/runtime failure on this video: report it, go on with the next
                log.debug("prediction failed on %s", video, exc_info=True)
                ok = False
                message = f"{video}: {type(exc).__name__}: {exc}"
                sink.emit({"event": "error", "video": video, "message": message})
                print(f"endofm predict: {message}", file=sys.stderr)
            failed += 0 if ok else 1
        seconds = round(time.perf_counter() - t0, 3)
        sink.emit(
            {"event": "done", "videos": len(videos), "failed": failed, "frames": n_frames, "seconds": seconds}
        )
        return 1 if failed else 0
    except KeyboardInterrupt:
        sink.emit({"event": "cancelled", "video": None})
        print("endofm predict: interrupted", file=sys.stderr)
        return 130
    finally:
        sink.close()


def _archive(args, videos: list[str], frames: list[int] | None, fail) -> int:
    """Archive mode (``core_model.inference.archive``): this process's share of the videos, under torchrun or not."""
    import torch

    from core_model import runtime
    from core_model.inference.archive import run_archive, write_index

    info = runtime.init_distributed()
    if args.device is None and info.distributed and not torch.cuda.is_available() and args.threads is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local)))  # share this node's cores
    predictor = _load_predictor(args)
    if isinstance(predictor, str):
        return fail(predictor, 2)
    counts = run_archive(
        videos,
        args.out_dir,
        lambda v: predictor.predict_video(v, frames=frames),
        rank=info.rank,
        world_size=info.world_size,
        echo=lambda e: print(json.dumps(e, separators=(",", ":")), flush=True),
    )
    runtime.barrier()
    if info.is_main:
        write_index(args.out_dir)
    print(json.dumps({"event": "done", "rank": info.rank, **counts}), flush=True)
    if info.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 1 if counts["failed"] else 0


def _load_predictor(args, background: bool = False):
    """The Predictor, or a readable message saying why the model cannot be used. ``background``: only model.json
    is read here; the weights load while the first video starts decoding (a failure then raises
    ``ModelLoadError`` from ``predict_video``)."""
    from core_model import runtime
    from core_model.inference.predictor import Predictor

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        return f"model directory {model_dir} does not exist"
    try:
        device = runtime.pick_device(args.device)
    except (RuntimeError, ValueError) as exc:
        return f"--device {args.device}: {exc}"
    try:
        return Predictor(
            model_dir,
            device=device,
            batch_size=args.batch_size,
            amp=not args.no_amp,
            frame_stride=args.frame_stride,
            clip_stride=args.clip_stride,
            box_threshold=args.box_threshold,
            max_boxes=args.max_boxes,
            workers=args.workers,
            load_in_background=background,
        )
    except Exception as exc:  # CheckpointError, bad JSON, shape mismatch, unknown head, missing CUDA ...
        log.debug("cannot load model %s", model_dir, exc_info=True)
        return f"cannot load model {model_dir}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
