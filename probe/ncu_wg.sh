#!/usr/bin/env bash
# Nsight Compute on xconvt_wgmma and cuDNN (issue 11): where the time of the losing 16-bit cases goes.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu=$NCU" > $OUT/all.log; nvidia-smi -L >> $OUT/all.log
SEC="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --section ComputeWorkloadAnalysis"
run() { tag=$1; shift; timeout ${TL:-120} $NCU --nvtx --nvtx-include "prof/" $SEC python3 probe/one_wg.py "$@" > $OUT/ncu_$tag.txt 2>&1; echo "$tag rc=$? $(date +%T)" >> $OUT/all.log; }
run same_f16_s5 same_k3s1 float16 wgmma
run same_f16_s7 same_k3s1 float16 wgmma_box 128 32 32 3
run same_f16_cudnn same_k3s1 float16 cudnn
run unet_f16_s5 unet_k2s2 float16 wgmma
run unet_f16_cudnn unet_k2s2 float16 cudnn
run gan_f16_s5 gan_k4s2 float16 wgmma
run gan_f16_cudnn gan_k4s2 float16 cudnn
