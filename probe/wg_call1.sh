#!/usr/bin/env bash
# Device call: tensor-core tests, the box staging's sweep, bench gpu --precisions, bench grad.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s box_test; timeout 60 python3 -m pytest -q -x -m gpu -p no:cacheprovider tests/test_gpu_mma.py -k box_staging > $OUT/box_test.txt 2>&1; tail -3 $OUT/box_test.txt >> $LOG; grep -E "^(FAILED|ERROR|E  )" $OUT/box_test.txt | head -20 | cut -c1-300 >> $LOG
s box_sweep; WG_VARIANT=wgmma_slab timeout 150 python3 probe/wg_sweep.py float16,tf32,3xtf32 gan_k4s2,same_k3s1,dilated_k3d2,vnet_k3s2 >> $LOG 2>&1
s precisions; timeout 200 python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -20 $OUT/precisions.txt >> $LOG
s tests_mma; timeout 100 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_mma.py --deselect tests/test_gpu_mma.py::test_wgmma_box_staging > $OUT/tests_mma.txt 2>&1; tail -3 $OUT/tests_mma.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_mma.txt | cut -c1-300 >> $LOG
s grad; timeout 70 python3 -m bench grad --device gpu --ops input,weight --json $OUT/grad.json > $OUT/grad.txt 2>&1; tail -32 $OUT/grad.txt >> $LOG
s done
