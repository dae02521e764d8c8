#!/usr/bin/env bash
# One device call: GPU tests of the changed paths, wgrad tiles, bench grad, the
# float32 suite twice (paired) with compare, host overhead.  Logs to $OUT/all.log.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; git log -1 --oneline; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
if [ "${TESTS:-1}" = 1 ]; then
s tests; timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_grad.py tests/test_interop_gpu.py > /tmp/t.log 2>&1; tail -3 /tmp/t.log >> $LOG; grep -E "^(FAILED|ERROR)" /tmp/t.log | cut -c1-300 >> $LOG
fi
if [ "${TILES:-1}" = 1 ]; then
s tiles; timeout 100 python3 probe/wgrad_tiles.py big,big16,mid unet_k2s2,gan_k4s2,unet_k2s2_big,vnet_k3s2 >> $LOG 2>&1
fi
if [ "${GRAD:-1}" = 1 ]; then
s grad; timeout 200 python3 -m bench grad --device gpu --json $OUT/grad.json > /tmp/g.log 2>&1; tail -44 /tmp/g.log >> $LOG
fi
if [ "${REPRO:-1}" = 1 ]; then
s repro; OUT=/tmp/repro bash bench/gpu_repro.sh > /dev/null 2>&1; cat /tmp/repro/gpu_repro.log >> $LOG; cp /tmp/repro/gpu_run1.json /tmp/repro/gpu_run2.json $OUT/ 2>/dev/null
fi
if [ "${OVER:-1}" = 1 ]; then
s overhead; timeout 120 python3 -m bench overhead --device gpu --out $OUT > /tmp/o.log 2>&1; tail -22 /tmp/o.log >> $LOG
s probe; PROBE_ROWS_ONLY=1 timeout 100 python3 probe/fastpath.py >> $LOG 2>&1
s overhead-nojax; timeout 100 python3 -c "import sys, runpy; sys.modules['jax'] = None; sys.argv = ['bench', 'overhead', '--device', 'gpu', '--repeat', '2000', '--out', '/tmp/nojax']; runpy.run_module('bench', run_name='__main__')" > /tmp/o2.log 2>&1; tail -22 /tmp/o2.log >> $LOG
fi
s done
