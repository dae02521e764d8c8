#!/usr/bin/env bash
# Device call: the box stagings' tests, then wgmma_box's sweep against slab 5's pick and cuDNN.
# (Ran 2026-12-03 06:13; the shuffle planner, its test and probe were removed afterwards.)
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s box_test; timeout 90 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_mma.py -k box_staging > $OUT/box_test.txt 2>&1; tail -3 $OUT/box_test.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/box_test.txt | head -20 | cut -c1-200 >> $LOG
s shuffle_test; timeout 90 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_shuffle.py > $OUT/shuffle_test.txt 2>&1; tail -3 $OUT/shuffle_test.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/shuffle_test.txt | head -20 | cut -c1-300 >> $LOG
s shuffle_probe; timeout 90 python3 probe/shuffle_probe.py >> $LOG 2>&1
D=${D:-same_k3s1,dilated_k3d2,vnet_k3s2,gan_k4s2,seed_example,unet_k2s2,unet_k2s2_big}
s sweep; WG_VARIANT=wgmma_box timeout ${T:-270} python3 probe/wg_sweep.py ${M:-float16,tf32,bfloat16,3xtf32} $D >> $LOG 2>&1
s done
