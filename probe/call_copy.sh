#!/usr/bin/env bash
# Device call: the new channels-last copy — tensor-core tests, then bench gpu --precisions on the dense cases.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; git log --oneline | head -1; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests_mma; timeout ${TT:-150} python3 -m pytest -q -x -m gpu -p no:cacheprovider tests/test_gpu_mma.py > $OUT/tests_mma.txt 2>&1; tail -3 $OUT/tests_mma.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/tests_mma.txt | head -20 | cut -c1-300 >> $LOG
s precisions; timeout ${TP:-240} python3 -m bench gpu --precisions --cases ${D:-seed_example,unet_k2s2,unet_k2s2_big,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2} --out $OUT > $OUT/precisions.txt 2>&1; tail -45 $OUT/precisions.txt >> $LOG
s done
