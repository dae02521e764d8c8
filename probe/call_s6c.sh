#!/usr/bin/env bash
# Session 6's third device call: host time per call after the prep's pack
# arguments went into one struct and the workspace into one allocation;
# pytest -m gpu in full; the precision table.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s host; timeout ${T0:-90} python3 probe/host_probe.py float16,bfloat16,float32 vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2 > $OUT/host.txt 2>&1; cat $OUT/host.txt | cut -c1-400 >> $LOG
s profile; timeout 40 python3 probe/host_profile.py bfloat16 dilated_k3d2 2000 2>&1 | head -40 >> $LOG
s tests_all; timeout ${T1:-200} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s precisions; timeout ${T2:-130} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -8 $OUT/precisions.txt >> $LOG
s done
