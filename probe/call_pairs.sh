#!/usr/bin/env bash
# Device call: W-pair configurations (unet) and slab 8: tests, sweeps against the plain wgmma tiles, bench on the dense cases.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests_new; timeout ${T1:-90} python3 -m pytest -q -p no:cacheprovider tests/test_gpu_mma.py -k "pairs or taps" > $OUT/tests_new.txt 2>&1; tail -3 $OUT/tests_new.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/tests_new.txt | head -20 | cut -c1-300 >> $LOG
s sweep_pair; mkdir -p $OUT/pair $OUT/plain; OUT=$OUT/pair WG_VARIANT=wgmma_pair timeout ${T2:-70} python3 probe/wg_sweep.py ${M:-float16,tf32,3xtf32} unet_k2s2,unet_k2s2_big >> $LOG 2>&1
s sweep_plain; OUT=$OUT/plain WG_VARIANT=wgmma timeout ${T2:-70} python3 probe/wg_sweep.py ${M:-float16,tf32,3xtf32} unet_k2s2,unet_k2s2_big >> $LOG 2>&1
s precisions; timeout ${T3:-200} python3 -m bench gpu --precisions --cases ${C:-unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2} --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s done
