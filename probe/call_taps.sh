#!/usr/bin/env bash
# Device call: the new channels-last copy and slab 8 (K blocks of several taps): tests, sweep, bench.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests_new; timeout ${T1:-120} python3 -m pytest -q -p no:cacheprovider tests/test_gpu_mma.py -k "taps or every_tile or suite_like" > $OUT/tests_new.txt 2>&1; tail -3 $OUT/tests_new.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/tests_new.txt | head -20 | cut -c1-300 >> $LOG
s sweep; WG_VARIANT=wgmma_taps timeout ${T2:-150} python3 probe/wg_sweep.py ${M:-float16,tf32,3xtf32} ${D:-same_k3s1,dilated_k3d2,seed_example} >> $LOG 2>&1
s precisions; timeout ${T3:-240} python3 -m bench gpu --precisions --cases ${C:-seed_example,unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2} --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s done
