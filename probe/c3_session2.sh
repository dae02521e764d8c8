#!/usr/bin/env bash
# conv3d sweep + tests; logs to $OUT/all.log
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s fma; timeout 100 python3 probe/conv3d_sweep.py fma imaging_c1_k5s2,sweep_k3,sweep_k5,grouped_g4,seed_example >> $LOG 2>&1
s 3xtf32; timeout 200 python3 probe/conv3d_sweep.py 3xtf32 unet_k2s2,unet_k2s2_big,vnet_k3s2,same_k3s1,dilated_k3d2 >> $LOG 2>&1
s tests; timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_grad.py -k "conv3d" > /tmp/t.log 2>&1; tail -3 /tmp/t.log >> $LOG; grep -E "^(FAILED|ERROR)" /tmp/t.log | head -30 | cut -c1-400 >> $LOG
s done
