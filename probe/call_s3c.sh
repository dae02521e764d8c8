#!/usr/bin/env bash
# Device call C (third session): the fold sweep with 192-row tiles (tf32, 3xtf32 on same, dilated), then pytest -m gpu in full.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s sweep; WG_VARIANT=wgmma_fold WG_STAGES=own timeout ${T1:-100} python3 probe/wg_sweep.py tf32,3xtf32 same_k3s1,dilated_k3d2 >> $LOG 2>&1
s tests_all; timeout ${T2:-260} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -2 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s done
