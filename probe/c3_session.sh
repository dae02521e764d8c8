#!/usr/bin/env bash
# One device call: the conv3d GPU tests, each conv3d plan against cuDNN's dgrad,
# then (FULL=1) the whole GPU test suite.  Logs to $OUT/all.log.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests; timeout ${T1:-150} python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_grad.py tests/test_gpu_mma.py -k "conv3d" > /tmp/t.log 2>&1; tail -3 /tmp/t.log >> $LOG; grep -E "^(FAILED|ERROR)|Error|error" /tmp/t.log | head -30 | cut -c1-400 >> $LOG
s plans; timeout ${T2:-200} python3 probe/conv3d_plans.py ${CASES:-} >> $LOG 2>&1
if [ "${GRAD:-0}" = 1 ]; then
s grad; timeout 200 python3 -m bench grad --device gpu --ops input,weight --json $OUT/grad.json > /tmp/g.log 2>&1; tail -30 /tmp/g.log >> $LOG
fi
if [ "${FULL:-0}" = 1 ]; then
s full; timeout ${T3:-200} python3 -m pytest -q -m gpu -p no:cacheprovider tests > /tmp/f.log 2>&1; tail -3 /tmp/f.log >> $LOG; grep -E "^(FAILED|ERROR)" /tmp/f.log | cut -c1-300 >> $LOG; cp /tmp/f.log $OUT/full.log
fi
s done
