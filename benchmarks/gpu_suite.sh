#!/usr/bin/env bash
# The GPU evidence in one short call: every GPU benchmark beside its naive reference, the GPU tests and the 12 GB
# fine-tune fit, as JSON lines. Meant for one lent GPU (H100/H200): the whole suite stays under 9 minutes, each step
# under its own time limit (a step that runs out is reported with rc 124 and whatever rows it printed).
#
#   benchmarks/gpu_suite.sh            # on the GPU, full shapes (the shapes each benchmark's issue named)
#   benchmarks/gpu_suite.sh --small    # CPU check of every step at small shapes (a few minutes on 2 cores)
#
# Steps (in order of value):
#   backbone_inference_and_train  benchmarks/backbone_throughput.py  ours vs reference, inference + training step
#   finetune_step_and_12gb_fit    benchmarks/finetune_throughput.py  ours vs reference per head, + the 12 GB fit rows
#   pretrain_step                 benchmarks/pretrain_throughput.py  ours vs the naive official-style step
#   pytest_gpu                    python -m pytest -m gpu            the GPU tests (skip cleanly without a GPU)
# Output: every JSON line a benchmark prints, with "suite_step" added; a {"event": "suite_step"} line per step
# (rc, seconds, its last summary); and a final {"event": "suite_summary"} naming the machine. Exit status: 0 when
# every step succeeded, 1 otherwise. PYTHON overrides the interpreter.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SMALL=""
if [ "${1:-}" = "--small" ]; then
    SMALL="--small"
elif [ -n "${1:-}" ]; then
    echo "usage: benchmarks/gpu_suite.sh [--small]" >&2
    exit 2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SUITE_START=$(date +%s)
FAILED=0
STEPS=""

# limits in seconds: full run (sums to 8 min 30 s at most) / --small on a shared CPU, where every benchmark times
# one iteration without warm-up (the code paths are what --small checks, not the figures)
if [ -n "$SMALL" ]; then
    L_BACKBONE=1200; L_FINETUNE=1200; L_PRETRAIN=1200; L_PYTEST=600; ITERS="--iters 1 --warmup 0"
else
    L_BACKBONE=170; L_FINETUNE=150; L_PRETRAIN=120; L_PYTEST=60; ITERS=""
fi

run_step() {  # run_step NAME LIMIT COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    rc=$?
    "$PY" - "$name" "$rc" "$t0" "$WORK/$name.out" "$WORK/$name.err" <<'EOF'
import json, sys, time
name, rc, t0, out, err = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
last = None
for line in open(out, encoding="utf-8", errors="replace"):
    line = line.strip()
    if not line.startswith("{"):
        continue
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        continue
    if isinstance(obj, dict):
        obj["suite_step"] = name
        last = obj
        print(json.dumps(obj), flush=True)
tail = [l.rstrip() for l in open(err, encoding="utf-8", errors="replace")][-5:] if rc else []
step = {"event": "suite_step", "step": name, "rc": rc, "seconds": round(time.time() - t0, 1),
        "timed_out": rc in (124, 137), "summary": last}
if name == "pytest_gpu":
    text = open(out, encoding="utf-8", errors="replace").read().strip().splitlines()
    step["result"] = text[-1] if text else ""
if tail:
    step["stderr_tail"] = tail
print(json.dumps(step), flush=True)
EOF
    if [ "$rc" -ne 0 ]; then FAILED=1; fi
    STEPS="$STEPS $name:$rc"
}

run_step backbone_inference_and_train "$L_BACKBONE" \
    "$PY" benchmarks/backbone_throughput.py $SMALL $ITERS --budget-s $((L_BACKBONE - 30))
run_step finetune_step_and_12gb_fit "$L_FINETUNE" "$PY" benchmarks/finetune_throughput.py $SMALL $ITERS
run_step pretrain_step "$L_PRETRAIN" "$PY" benchmarks/pretrain_throughput.py $SMALL $ITERS
run_step pytest_gpu "$L_PYTEST" "$PY" -m pytest -q -m gpu -p no:cacheprovider tests

"$PY" - "$SUITE_START" "$FAILED" "$STEPS" "${SMALL:-full}" <<'EOF'
import json, platform, sys, time
start, failed, steps, mode = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
machine = f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip()
gpu = None
try:
    import torch
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
except Exception:  # noqa: BLE001 - the summary must print whatever happened
    threads = None
print(json.dumps({
    "event": "suite_summary",
    "mode": mode.lstrip("-"),
    "machine": machine,
    "gpu": gpu,
    "cpu_threads": threads,
    "steps": {s.split(":")[0]: int(s.split(":")[1]) for s in steps},
    "ok": not failed,
    "seconds": round(time.time() - start, 1),
}), flush=True)
EOF
exit "$FAILED"
