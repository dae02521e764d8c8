#!/usr/bin/env bash
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s f16; timeout 280 python3 probe/mma_sweep.py float16 gan_k4s2,same_k3s1,vnet_k3s2,dilated_k3d2,unet_k2s2 >> $LOG 2>&1
s tf32; timeout 250 python3 probe/mma_sweep.py tf32 gan_k4s2,same_k3s1,dilated_k3d2,vnet_k3s2 >> $LOG 2>&1
s done
