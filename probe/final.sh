#!/usr/bin/env bash
# The session's last device call: GPU tests of the changed paths, host overhead,
# the planner refactor against the code before it (paired), Dask on the GPU and
# on the 16-core host's CPU.  Logs to $OUT/final.log.
set -uo pipefail
LOG=$OUT/final.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl .whl-dask/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s tests
timeout 220 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_interop_gpu.py tests/test_dask_gpu.py tests/test_grad.py -k "not jax" > /tmp/t.log 2>&1
tail -3 /tmp/t.log >> $LOG; grep -E "^(FAILED|ERROR)" /tmp/t.log | cut -c1-300 >> $LOG
s overhead
timeout 100 python3 -c "import sys, runpy; sys.modules['jax'] = None; sys.argv = ['bench', 'overhead', '--device', 'gpu', '--repeat', '2000', '--out', '$OUT']; runpy.run_module('bench', run_name='__main__')" > /tmp/o.log 2>&1; tail -20 /tmp/o.log | grep -v handshake >> $LOG
s probe; PROBE_ROWS_ONLY=1 timeout 60 python3 probe/fastpath.py 2>&1 | head -16 >> $LOG
for c in b2d8a88 65fb56e; do
  s "oldnew $c"
  PYTHONPATH=/tmp/site:$PWD/old/$c:$PWD timeout 100 python3 probe/oldnew.py $OUT/oldnew_$c.json >> $LOG 2>&1
done
s dask gpu
timeout 170 python3 -m bench dask --device gpu --cases vnet_k3s2_c64_big,vnet_k3s2_c64 --halo-rows slices,blocks --repeat 3 --out $OUT > /tmp/d.log 2>&1; tail -30 /tmp/d.log >> $LOG
s dask cpu
timeout 110 python3 -m bench dask --device cpu --worker-malloc reuse --halo-rows slices,blocks --repeat 5 --out $OUT > /tmp/c.log 2>&1; tail -30 /tmp/c.log >> $LOG
s done
