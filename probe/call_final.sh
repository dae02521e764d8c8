#!/usr/bin/env bash
# Device call (closing): the new kernels' GPU tests, bench gpu --precisions on the whole suite, then the rest of pytest -m gpu.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests_new; timeout ${T1:-80} python3 -m pytest -q -p no:cacheprovider tests/test_gpu_mma.py -k "pairs or taps or vec or every_tile or suite_like" > $OUT/tests_new.txt 2>&1; tail -3 $OUT/tests_new.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/tests_new.txt | head -20 | cut -c1-300 >> $LOG
s sweep_vec; WG_VARIANT=wgmma_vec timeout ${T4:-60} python3 probe/wg_sweep.py float16,tf32 same_k3s1,dilated_k3d2,seed_example >> $LOG 2>&1
s precisions; timeout ${T2:-230} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -60 $OUT/precisions.txt >> $LOG
s tests_all; timeout ${T3:-190} python3 -m pytest -m gpu -p no:cacheprovider -rA tests/test_gpu_mma.py tests/ --deselect tests/test_gpu_mma.py::test_wgmma_pairs --deselect tests/test_gpu_mma.py::test_wgmma_taps --deselect tests/test_gpu_mma.py::test_wgmma_every_tile --deselect tests/test_gpu_mma.py::test_wgmma_vec_epilogue > $OUT/tests_all.txt 2>&1; grep -cE "^PASSED" $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG; tail -2 $OUT/tests_all.txt >> $LOG
s done
