#!/usr/bin/env bash
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
s() { echo "== $* ($(date +%T))" >> $LOG; }
s every_tile; timeout 75 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_mma.py -k wgmma_every_tile > $OUT/t1.txt 2>&1; tail -3 $OUT/t1.txt >> $LOG; grep -E "^(FAILED|ERROR|E )" $OUT/t1.txt | head -20 | cut -c1-300 >> $LOG
s rest; timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_torch_oracle.py tests/test_torch_ops.py tests/test_layer.py tests/test_jax_grad.py tests/test_interop_gpu.py tests/test_grad.py > $OUT/t2.txt 2>&1; tail -3 $OUT/t2.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/t2.txt | cut -c1-300 >> $LOG
s done
