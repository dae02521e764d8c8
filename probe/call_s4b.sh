#!/usr/bin/env bash
# Device call B (fourth session): the MW / L1 probe, pytest -m gpu in full (the _Launch fix),
# bench gpu --precisions with the planner offered the MW tiles (full suite), then as the
# library stood before (WG_MW_TILES empty) on the cases whose pick changes.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
s probe; timeout ${T0:-110} python3 probe/l1_probe.py float16,tf32 same_k3s1,vnet_k3s2,dilated_k3d2,gan_k4s2 > $OUT/probe.txt 2>&1; cat $OUT/probe.txt >> $LOG
s tests_all; timeout ${T1:-140} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -20 | cut -c1-300 >> $LOG
mkdir -p $OUT/mw
s precisions_mw; timeout ${T3:-150} python3 probe/bench_mw.py ${MWS:-1.0} --out $OUT/mw > $OUT/mw/precisions.txt 2>&1; tail -6 $OUT/mw/precisions.txt >> $LOG
[ -n "${T2:-}" ] && { s precisions_default; timeout $T2 python3 -m bench gpu --precisions --cases seed_example,vnet_k3s2,gan_k4s2,same_k3s1,dilated_k3d2,grouped_g4,sweep_k3 --out $OUT > $OUT/precisions.txt 2>&1; tail -6 $OUT/precisions.txt >> $LOG; }
s done
