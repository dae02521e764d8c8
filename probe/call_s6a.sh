#!/usr/bin/env bash
# Session 6's first device call: the preparation probe (tile copy against the
# 16-byte vector copy, bit-for-bit), then pytest -m gpu in full, then the
# precision table.  Needs .whl (array-api-compat, pytest-xdist, execnet).
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
D=unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2,seed_example
s prep; timeout ${T0:-150} python3 probe/prep_probe.py float16,tf32,bfloat16,3xtf32 $D > $OUT/prep.txt 2>&1; cat $OUT/prep.txt | cut -c1-900 >> $LOG
s tests_all; timeout ${T1:-200} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s precisions; timeout ${T2:-130} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s done
