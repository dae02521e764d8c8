#!/usr/bin/env bash
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; python3 -c "import cupy, torch; print(cupy.__version__, torch.__version__, torch.backends.cudnn.version())"; } > $LOG 2>&1
s() { echo "== $* ($(date +%T))" >> $LOG; }
D=seed_example,unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2,grouped_g4
s fwd; timeout 420 python3 probe/wg_sweep.py 3xtf32,float16,tf32,bfloat16 $D >> $LOG 2>&1
s conv3d; timeout 200 python3 probe/wg_sweep.py float16,3xtf32,tf32 unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2 conv3d >> $LOG 2>&1
s done
