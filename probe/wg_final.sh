#!/usr/bin/env bash
# Closing device call of the wgmma session: the tensor-core tests, bench gpu
# --precisions, bench grad, then the other gpu tests as time allows.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests_mma; timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_mma.py > $OUT/tests_mma.txt 2>&1; tail -3 $OUT/tests_mma.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_mma.txt | cut -c1-300 >> $LOG
s precisions; timeout 220 python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -20 $OUT/precisions.txt >> $LOG
s grad; timeout 90 python3 -m bench grad --device gpu --ops input,weight --json $OUT/grad.json > $OUT/grad.txt 2>&1; tail -32 $OUT/grad.txt >> $LOG
s tests; timeout 110 python3 -m pytest -q -m gpu -p no:cacheprovider tests --deselect tests/test_gpu_mma.py > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests.txt | cut -c1-300 >> $LOG
s done
