#!/usr/bin/env bash
# One call on the CUDA machine (see ../shared/gpu/README.md): install the
# carried wheels (.whl/, and .whl-*/ when present), then the GPU tests and the
# GPU benchmark, logs and results under $OUT.  Run from the project root:
#   OUT=/some/dir TESTS="tests/test_gpu.py" BENCH="gpu --algorithms direct,auto" bash bench/gpu_session.sh
set -uo pipefail
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
wheels=$(ls .whl/*.whl .whl-*/*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $wheels || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
# JAX must not take 75% of the GPU's memory at start (CuPy and PyTorch share it)
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export XCONVT_HYPOTHESIS_PROFILE=${XCONVT_HYPOTHESIS_PROFILE:-quick}
nvidia-smi -L | tee "$OUT/card.txt"
if [ "${TESTS:-tests}" != "none" ]; then
  timeout "${TEST_TIMEOUT:-360}" python3 -m pytest -q -m gpu -p no:cacheprovider ${TESTS:-tests} \
    > "$OUT/gpu_tests.log" 2>&1
  echo "pytest exit $?"; grep -E "passed|failed|error" "$OUT/gpu_tests.log" | tail -3
  grep -E "^(FAILED|ERROR)" "$OUT/gpu_tests.log" | cut -c1-300 | head -30
fi
if [ "${BENCH:-gpu}" != "none" ]; then
  timeout "${BENCH_TIMEOUT:-300}" python3 -m bench ${BENCH:-gpu} --out "$OUT" > "$OUT/bench.log" 2>&1
  echo "bench exit $?"; tail -30 "$OUT/bench.log"
fi
