#!/usr/bin/env bash
# Session 6's fourth device call: host time per call, this code against the
# session's starting code (old_code/: git archive 00cb9f3, carried) on one
# host, bracketed; then pytest -m gpu in full.
set -uo pipefail
LOG=$OUT/all.log
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export XLA_PYTHON_CLIENT_PREALLOCATE=false XCONVT_HYPOTHESIS_PROFILE=quick PYTHONUNBUFFERED=1
{ date; nvidia-smi -L; } > $LOG
s() { echo "== $* ($(date +%T))" >> $LOG; }
H="float16 gan_k4s2,dilated_k3d2,vnet_k3s2"
R=$PWD
for v in new old new; do
  s host_$v
  if [ $v = new ]; then (cd $R && PYTHONPATH=/tmp/site:$R timeout 100 python3 probe/host_probe.py $H); else (cd $R/old_code && PYTHONPATH=/tmp/site:$R/old_code timeout 100 python3 $R/probe/host_probe.py $H); fi >> $OUT/host_$v.txt 2>&1
  tail -6 $OUT/host_$v.txt | cut -c1-300 >> $LOG
done
s tests_all; PYTHONPATH=/tmp/site:$R timeout ${T1:-200} python3 -m pytest -m gpu -n 8 -p no:cacheprovider -rfE --tb=short tests/ > $OUT/tests_all.txt 2>&1; tail -3 $OUT/tests_all.txt >> $LOG; grep -E "^(FAILED|ERROR)" $OUT/tests_all.txt | head -30 | cut -c1-300 >> $LOG
s done
