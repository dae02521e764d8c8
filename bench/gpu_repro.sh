#!/usr/bin/env bash
# Run-to-run noise of the GPU suite's ratios to cuDNN (issue 10: "within 3% of the
# previous run's ratios on every case"), in one device call: the float32 suite twice,
# each run its own process, xconvt timed paired with cuDNN (blocks alternating, the
# ratio the median over pairs), then `bench compare`: run 1 -> run 2 (the noise of
# identical code) and the last committed run ($BASE) -> each new run.
#
# From the project root on the CUDA machine, with .whl/ carried (array-api-compat):
#   OUT=$OUT bash bench/gpu_repro.sh
# Optional: BASE=bench/results/<file>.json, ARGS="<bench gpu options>", RUNS="1 2",
# BENCH_TIMEOUT=<s per run>.  Leaves at most 4 files in $OUT (the device tool returns 8):
# gpu_repro.log (both runs' tables and every comparison), gpu_run1.json, gpu_run2.json,
# compare_run1_run2.json.
set -uo pipefail
OUT=${OUT:-bench/out}
BASE=${BASE:-bench/results/gpu_h200_2026-12-02b.json}
ARGS=${ARGS:---algorithms auto --no-tf32 --min-time 0.5}
RUNS=${RUNS:-1 2}
mkdir -p "$OUT"
LOG="$OUT/gpu_repro.log"
wheels=$(ls .whl/*.whl .whl-*/*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $wheels || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; git log -1 --oneline 2>/dev/null; echo "ARGS=$ARGS BASE=$BASE"; } | tee "$LOG"
t0=$(date +%s)
for run in $RUNS; do
  echo "== run $run ($(($(date +%s) - t0)) s)" | tee -a "$LOG"
  timeout "${BENCH_TIMEOUT:-150}" python3 -m bench gpu $ARGS --plain --out "/tmp/gpu_run$run" \
    >> "$LOG" 2>&1
  echo "run $run exit $? ($(($(date +%s) - t0)) s)" | tee -a "$LOG"
  cp "/tmp/gpu_run$run/gpu.json" "$OUT/gpu_run$run.json" 2>/dev/null
  grep -E "^(geomean|paired ratios)" "$LOG" | tail -2
done
if [ -f "$OUT/gpu_run1.json" ] && [ -f "$OUT/gpu_run2.json" ]; then
  echo "== run 1 -> run 2 (identical code)" | tee -a "$LOG"
  python3 -m bench compare "$OUT/gpu_run1.json" "$OUT/gpu_run2.json" --plain \
    --json "$OUT/compare_run1_run2.json" 2>&1 | tee -a "$LOG"
fi
for run in $RUNS; do
  if [ -f "$BASE" ] && [ -f "$OUT/gpu_run$run.json" ]; then
    echo "== $BASE -> run $run" | tee -a "$LOG"
    python3 -m bench compare "$BASE" "$OUT/gpu_run$run.json" --plain 2>&1 | tee -a "$LOG"
  fi
done
echo "done ($(($(date +%s) - t0)) s)" | tee -a "$LOG"
