#!/usr/bin/env bash
# Reproduce the bundled demo model (resources/demo_model/, see its MODEL_CARD.md) with one command:
#
#     scripts/make_demo_model.sh                 # writes build/demo_model/ and then resources/demo_model/
#     OUT=/tmp/demo scripts/make_demo_model.sh   # somewhere else (compare with the bundled one)
#
# Stages: phantom videos -> DINO pretraining of endofm_tiny (the project's pipeline) -> fine-tuning of the
# classification, segmentation and detection heads on the phantom labels -> held-out evaluation on phantom videos
# of the training site and of a second site ("site_b"). Everything is seeded; on the same machine and library
# versions the result is the same to rounding. Across machines/thread counts floating-point order differs, so
# the tolerances stated in the model card apply. About 15 min on a 2-core CPU; minutes on a GPU.
# Trained on synthetic video only: for trying the software, never for clinical use.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
WORK=${WORK:-build/demo_model}
OUT=${OUT:-resources/demo_model}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}   # no OpenMP spin-waiting on a shared CPU
START=$(date +%s)
stamp() { echo "[$(($(date +%s) - START)) s] $*" >&2; }

rm -rf "$WORK"
mkdir -p "$WORK"

SCALE=2.5  # phantom polyp size: median ~5 % of the frame, like the public polyp datasets (1.0: ~1 %, too small
           # for a 16-px-patch model at 112 px to see in a CPU-sized run)
stamp "1/5 phantom videos (128 px, 32 frames, polyp scale $SCALE): 48 for training/validation, 12 + 12 held out"
$PY -m core_model phantom "$WORK/train" --videos 48 --frames 32 --size 128 --seed 1000 --val-fraction 0.15 --polyp-scale $SCALE >"$WORK/phantom_train.jsonl"
$PY -m core_model phantom "$WORK/test_default" --videos 12 --frames 32 --size 128 --seed 5000 --site default --polyp-scale $SCALE --val-fraction 0 >"$WORK/phantom_test_default.jsonl"
$PY -m core_model phantom "$WORK/test_site_b" --videos 12 --frames 32 --size 128 --seed 6000 --site site_b --polyp-scale $SCALE --val-fraction 0 >"$WORK/phantom_test_site_b.jsonl"

stamp "2/5 DINO pretraining of endofm_tiny on the 48 training videos (112-px globals, 48-px locals, 4/2 frames)"
# The official optimisation settings (lr 5e-4 per 256 clips, teacher temperature 0.04, momentum 0.996), scaled down
# in views and head. Higher learning rates or sharper teachers collapse to a constant output on phantom video
# within a few dozen steps (benchmarks/pretrain_probe.py); at this lr the weights move little in 96 steps.
$PY -m core_model pretrain --json --out "$WORK/pretrain" \
    --set model.arch=endofm_tiny --set data.path="$WORK/train" --set data.batch_size_per_gpu=8 \
    --set data.num_workers=0 --set views.global_size=112 --set views.local_size=48 \
    --set 'views.global_frames=[4,4]' --set 'views.local_frames=[2,2,4,4]' --set views.sampling_rate=4 \
    --set views.num_frames=8 --set head.out_dim=1024 --set head.hidden_dim=512 --set head.bottleneck_dim=128 \
    --set optim.epochs=16 --set optim.warmup_epochs=2 --set optim.lr=0.0005 --set optim.momentum_teacher=0.996 \
    --set run.seed=0 >"$WORK/pretrain.jsonl"

stamp "3/5 fine-tuning the three heads (and the backbone) on the phantom labels (112 px, 2 frames, stride 2)"
$PY -m core_model finetune --manifest "$WORK/train/manifest.json" --out "$WORK/finetune" \
    --init "$WORK/pretrain/export/model" --tasks classification,segmentation,detection \
    --epochs 60 --batch-size 8 --num-frames 2 --img-size 112 --frame-stride 2 --clips-per-video 4 --seed 0 \
    --lr 1e-3 --set layer_decay=1.0 --set warmup_epochs=2 --set eval_every=10 --set export_fp16=true \
    >"$WORK/finetune.jsonl"

stamp "4/5 held-out evaluation (same site, second site)"
for site in default site_b; do
    $PY -m core_model evaluate --model "$WORK/finetune/model" --manifest "$WORK/test_$site/manifest.json" \
        --split all --out "$WORK/eval_$site.json" >"$WORK/eval_$site.jsonl"
done

stamp "5/5 copying the model to $OUT"
mkdir -p "$OUT"
cp "$WORK/finetune/model/model.safetensors" "$WORK/finetune/model/model.json" "$OUT/"
$PY - "$WORK" "$OUT" "$START" <<'EOF'
import json, platform, sys, time
from pathlib import Path

work, out, start = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
held = {site: json.loads((work / f"eval_{site}.json").read_text())["metrics"] for site in ("default", "site_b")}
ft = json.loads((work / "finetune" / "result.json").read_text())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
summary = {
    "held_out": held,
    "validation": ft["metrics"].get("val", {}),
    "seconds_total": round(time.time() - start),
    "machine": {"cpu": cpu, "python": platform.python_version()},
    "weights_bytes": (out / "model.safetensors").stat().st_size,
}
(out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary, indent=1))
EOF
stamp "done"
