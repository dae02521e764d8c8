#!/usr/bin/env bash
# Device call B (third session): the W fold's GPU tests, its sweep (tf32, float16), then pytest -m gpu and bench --precisions.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s fold_tests; timeout ${T0:-100} python3 -m pytest -n 8 -p no:cacheprovider -rfE --tb=short tests/test_gpu_mma.py -k "fold" > $OUT/tests_fold.txt 2>&1; tail -2 $OUT/tests_fold.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  " $OUT/tests_fold.txt | head -20 | cut -c1-300 >> $LOG
s sweep; WG_VARIANT=wgmma_fold WG_STAGES=own timeout ${T1:-170} python3 probe/wg_sweep.py tf32,float16 vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2,seed_example >> $LOG 2>&1
s precisions; timeout ${T2:-215} python3 -m bench gpu --precisions --out $OUT > $OUT/precisions.txt 2>&1; tail -18 $OUT/precisions.txt >> $LOG
s tests_all; timeout ${T3:-90} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ --deselect tests/test_gpu_mma.py::test_wgmma_fold > $OUT/tests_all.txt 2>&1; tail -2 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s done
