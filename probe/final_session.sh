#!/usr/bin/env bash
# The session's closing device call: every GPU test, bench grad (input and
# weight gradients against cuDNN), bench gpu --precisions.  Logs under $OUT.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s grad; timeout ${TG:-120} python3 -m bench grad --device gpu --ops input,weight --json $OUT/grad.json > $OUT/grad.txt 2>&1; tail -32 $OUT/grad.txt >> $LOG
s precisions; timeout ${TP:-240} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -20 $OUT/precisions.txt >> $LOG
s tests; timeout ${TT:-200} python3 -m pytest -q -m gpu -p no:cacheprovider tests > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests.txt | cut -c1-300 >> $LOG
s done
