#!/usr/bin/env bash
# Session 6's second device call: the precision table with the copy's
# measured rates in the estimate (two picks move: vnet_k3s2 float32 to the
# copy, sweep_k3 bfloat16 to wgmma), then host against device time per call.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s precisions; timeout ${T0:-150} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s host; timeout ${T1:-120} python3 probe/host_probe.py float16,bfloat16,float32 vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2,sweep_k3 > $OUT/host.txt 2>&1; cat $OUT/host.txt | cut -c1-400 >> $LOG
s done
