#!/usr/bin/env bash
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu=$NCU" > $OUT/all.log; nvidia-smi -L >> $OUT/all.log
run() { tag=$1; shift; timeout 150 $NCU --kernel-name xconvt_mma --launch-skip 3 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis --section InstructionStats python3 probe/one_cfg.py "$@" > $OUT/ncu_$tag.txt 2>&1; echo "$tag rc=$?" >> $OUT/all.log; }
run unet_c3d_3x unet_k2s2 3xtf32 128 128 16 64 32 3 0 conv3d
run same_f16 same_k3s1 float16 128 32 32 32 32 3 4
run gan_tf32 gan_k4s2 tf32 256 128 32 64 64 3 4
