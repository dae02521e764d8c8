"""Every CUDA kernel template compiles for sm_80, sm_90 and sm_90a (CPU-only check).

NVRTC compiles the kernels at run time on a GPU machine, one family source at
a time with the common header inlined (:func:`xconvt.backends.cuda.runtime.source`);
this test compiles the same text with ``nvcc`` where it is installed,
instantiating the specializations the host code asks for (every output-channel
tile ``RO``, a spread of W-tap blocks ``TWX``, every dtype, both index widths),
so a kernel that does not compile never lands.  Skipped where ``nvcc`` is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xconvt.backends.cuda import (conv3d, fused, gather, gemm, pointwise, remap, runtime,
                                  tile, wgrad)
from xconvt.backends.fft import one_pass

NVCC = shutil.which("nvcc")
CTYPES = runtime.CTYPES


def _instances():
    """Family source -> template instantiations to compile."""
    out = {fused.SOURCE: [], gemm.SOURCE: [], pointwise.SOURCE: [], gather.SOURCE: [],
           tile.SOURCE: [], remap.SOURCE: [], wgrad.SOURCE: [], one_pass.KERNELS: [],
           conv3d.SOURCE: []}
    for ctype, wb in (("float", 4), ("double", 2)):
        for cob in conv3d.COBS:  # conv3d.config: twice the positions for 1 or 2 channels
            out[conv3d.SOURCE].append(
                f"xconvt_conv3d_fma<{ctype}, {cob}, {2 if cob <= 2 else wb}>")
    for ro in (1, 2, 4, 8, 12, 16):
        for twx in (1, 2, 3, 5, 8, 13):
            out[fused.SOURCE].append(f"xconvt_fused<float, int, {ro}, {fused.RW}, {twx}>")
    for ctype in CTYPES.values():
        for index_t in ("int", "long long"):
            out[fused.SOURCE].append(f"xconvt_fused<{ctype}, {index_t}, 4, {fused.RW}, 3>")
            out[fused.SOURCE].append(f"xconvt_fused<{ctype}, {index_t}, 1, {fused.RW}, 7>")
            out[fused.SOURCE].append(f"xconvt_pack<{ctype}, {index_t}>")
            col = "double" if ctype == "double" else "float"
            out[gemm.SOURCE].append(f"xconvt_col2im<{ctype}, {col}, {index_t}>")
            for k in ("pad_x", "pad_w", "crop"):
                out[one_pass.KERNELS].append(f"xconvt_fft_{k}<{ctype}, {index_t}>")
            out[remap.SOURCE].append(f"xconvt_remap<{ctype}, {index_t}>")
            for co in (1, 2, 4, 8):
                out[pointwise.SOURCE].append(f"xconvt_pointwise<{ctype}, {index_t}, {co}>")
            for co, rg, tw in ((1, 1, 2), (2, 8, 4), (4, 4, 8)):
                out[gather.SOURCE].append(f"xconvt_gather<{ctype}, {index_t}, {co}, {rg}, {tw}>")
            for ro in (4, 8):
                out[tile.SOURCE].append(f"xconvt_tile<{ctype}, {index_t}, {ro}>")
    for name, (bm, bn, bk, tm, tn, minb) in wgrad.TILES.items():
        # every tile in float32; the other dtypes (their own load and accumulate
        # paths) on the widest and the thinnest tile
        for ctype in CTYPES.values() if name in ("big", "thin") else ("float",):
            out[wgrad.SOURCE].append(
                f"xconvt_wgrad<{ctype}, {bm}, {bn}, {bk}, {tm}, {tn}, {minb}>")
    for real in ("float", "double"):
        out[wgrad.SOURCE].append(f"xconvt_wgrad_reduce<{real}>")
        for index_t in ("int", "long long"):
            for ob in (1, 4):
                out[one_pass.KERNELS].append(f"xconvt_fft_mac<{real}, {index_t}, {ob}>")
    return out


INSTANCES = _instances()


def _unit():
    """One translation unit: the common header once, then every family's source
    (as NVRTC compiles each: :func:`~xconvt.backends.cuda.runtime.source`),
    then the instantiations (one nvcc run per architecture keeps CI quick)."""
    header = (runtime.KERNELS / "common.cuh").read_text().replace("#pragma once\n", "")
    parts = [header]
    for source in sorted(INSTANCES, key=str):
        parts.append(Path(source).read_text().replace('#include "common.cuh"', ""))
    body = "\n".join(f"  (void*)&{name}," for names in INSTANCES.values() for name in names)
    return "\n".join(parts) + f"\nvoid* xconvt_instances[] = {{\n{body}\n}};\n"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_90a"])
def test_kernels_compile(tmp_path, arch):
    unit = tmp_path / "instances.cu"
    unit.write_text(_unit())
    gencode = (["-gencode=arch=compute_90a,code=sm_90a"] if arch == "sm_90a"
               else [f"-arch={arch}"])
    cmd = [NVCC, "-std=c++17", *gencode, f"-DXCONVT_WIDE_MINB={fused.WIDE_MINB}",
           "-split-compile=0", "-cubin", "-o", str(tmp_path / "out.cubin"), str(unit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_every_family_source_is_compiled_here():
    """Every kernel source is compiled by this test, or (the tensor-core family,
    whose instantiations follow its tile table) by ``tests/test_mma_tables.py``."""
    from xconvt.backends.cuda import mma

    kernels = set(runtime.KERNELS.glob("*.cu")) | {one_pass.KERNELS}
    assert kernels == set(INSTANCES) | {mma._SOURCE_PATH}


@pytest.mark.parametrize("module, struct, fields", [
    (fused, "FusedArgs", "_FUSED_FIELDS"), (gemm, "Col2imArgs", "_COL2IM_FIELDS"),
    (pointwise, "PointwiseArgs", "_POINTWISE_FIELDS"), (gather, "GatherArgs", "_GATHER_FIELDS"),
    (tile, "TileArgs", "_TILE_FIELDS"), (wgrad, "WgradArgs", "_FIELDS"),
    (conv3d, "Conv3dArgs", "FIELDS")])
def test_argument_structs_match_the_host(module, struct, fields):
    """The host packs each kernel's scalar arguments as int32 fields in a fixed
    order; the C struct must list the same fields in the same order."""
    text = Path(module.SOURCE).read_text()
    body = re.search(r"struct " + struct + r" \{(.*?)\};", text, re.S).group(1)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if decl:
            assert decl.startswith("int "), decl
            names += [n.strip() for n in decl[4:].split(",")]
    assert tuple(names) == getattr(module, fields)


def test_meta_columns_match_the_kernel():
    """The fused kernel's per-phase metadata columns are its ``M_*`` enum."""
    text = Path(fused.SOURCE).read_text()
    body = re.search(r"enum \{(.*?)META\s*\};", text, re.S).group(1)
    body = re.sub(r"//[^\n]*", "", body)
    names = [n.strip().split("=")[0].strip() for n in body.split(",") if n.strip()]
    assert tuple(n[2:].lower() for n in names) == fused.META_FIELDS
