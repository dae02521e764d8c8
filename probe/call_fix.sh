#!/usr/bin/env bash
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
t() { tag=$1; tl=$2; shift 2; s $tag; timeout $tl python3 -m pytest -m gpu -p no:cacheprovider -rfE --tb=line "$@" > $OUT/$tag.txt 2>&1; tail -2 $OUT/$tag.txt >> $LOG; grep -E "^(FAILED|ERROR)|^E  |^/.*Error" $OUT/$tag.txt | head -12 | cut -c1-300 >> $LOG; }
t random 50 tests/test_gpu_mma.py -k "test_mma_matches_reference or test_mma_many_channels or conv3d_random"
t pairs_vec 75 tests/test_gpu_mma.py -k "pairs or vec"
t gpu 75 tests/test_gpu.py
s done
