#!/usr/bin/env bash
# Device call A (fourth session): the L1 / 256-row probe, then pytest -m gpu in full (xdist, 8 workers).
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s probe; timeout ${T0:-270} python3 probe/l1_probe.py ${MODES:-float16,tf32} ${CASES:-same_k3s1,vnet_k3s2,dilated_k3d2,gan_k4s2} > $OUT/probe.txt 2>&1; cat $OUT/probe.txt >> $LOG
s tests_all; timeout ${T1:-230} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s done
