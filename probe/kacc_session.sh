#!/usr/bin/env bash
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s c3d; timeout 150 python3 probe/conv3d_sweep.py 3xtf32 unet_k2s2,unet_k2s2_big,vnet_k3s2,same_k3s1,dilated_k3d2 >> $LOG 2>&1
s fwd; timeout 150 python3 probe/mma_sweep.py 3xtf32 gan_k4s2,same_k3s1,vnet_k3s2,unet_k2s2 >> $LOG 2>&1
s tests; timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_mma.py > /tmp/t.log 2>&1; tail -3 /tmp/t.log >> $LOG; grep -E "^(FAILED|ERROR)|assert" /tmp/t.log | head -20 | cut -c1-300 >> $LOG
s done
