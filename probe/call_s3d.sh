#!/usr/bin/env bash
# Device call D (third session): bench gpu --precisions with the fold calibrated, then the conv3d and fold GPU tests (the rest passed in calls A and C).
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s precisions; timeout ${T1:-200} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -18 $OUT/precisions.txt >> $LOG
s tests; timeout ${T2:-70} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/test_gpu_mma.py tests/test_grad.py -k "conv3d or fold" > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests.txt | head -30 | cut -c1-300 >> $LOG
s done
