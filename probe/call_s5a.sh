#!/usr/bin/env bash
# Next session's first device call: bench gpu --precisions on the final code (mw_rows), the
# MW probe in bfloat16 (its rule is float16's, untimed), then pytest -m gpu in full.
# Needs .whl with array-api-compat, pytest-xdist and execnet (../shared/gpu/wheels.sh).
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s precisions; timeout ${T0:-120} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s probe_bf16; timeout ${T1:-90} python3 probe/l1_probe.py bfloat16 same_k3s1,vnet_k3s2,dilated_k3d2 > $OUT/probe.txt 2>&1; cat $OUT/probe.txt >> $LOG
s tests_all; timeout ${T2:-200} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s done
