"""Every CUDA kernel template compiles for sm_80 and sm_90 (CPU-only check).

NVRTC compiles the kernels at run time on a GPU machine; this test compiles the
same source with ``nvcc`` where it is installed, instantiating the
specializations the host code asks for (every output-channel tile ``RO``, a
spread of W-tap blocks ``TWX``, every dtype, both index widths), so a kernel
that does not compile never lands.  Skipped where ``nvcc`` is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from xconvt.backends import cuda as cuda_backend

NVCC = shutil.which("nvcc")
SOURCE = Path(cuda_backend.__file__).with_name("cuda") / "conv_transpose3d.cu"
CTYPES = {"float16": "__half", "float32": "float", "float64": "double"}


def _instances():
    names = []
    for ro in (1, 2, 4, 8, 12, 16):
        for twx in (1, 2, 3, 5, 8, 13):
            names.append(f"xconvt_fused<float, int, {ro}, {cuda_backend.RW}, {twx}>")
    for ctype in CTYPES.values():
        for index_t in ("int", "long long"):
            names.append(f"xconvt_fused<{ctype}, {index_t}, 4, {cuda_backend.RW}, 3>")
            names.append(f"xconvt_fused<{ctype}, {index_t}, 1, {cuda_backend.RW}, 7>")
            names.append(f"xconvt_pack<{ctype}, {index_t}>")
            col = "double" if ctype == "double" else "float"
            names.append(f"xconvt_col2im<{ctype}, {col}, {index_t}>")
            names.append(f"xconvt_fft_pad_x<{ctype}, {index_t}>")
            names.append(f"xconvt_fft_pad_w<{ctype}, {index_t}>")
            names.append(f"xconvt_fft_crop<{ctype}, {index_t}>")
            names.append(f"xconvt_remap<{ctype}, {index_t}>")
            for co in (1, 2, 4, 8):
                names.append(f"xconvt_pointwise<{ctype}, {index_t}, {co}>")
            for co, rg, tw in ((1, 1, 2), (2, 8, 4), (4, 4, 8)):
                names.append(f"xconvt_gather<{ctype}, {index_t}, {co}, {rg}, {tw}>")
            for ro in (4, 8):
                names.append(f"xconvt_tile<{ctype}, {index_t}, {ro}>")
    for real in ("float", "double"):
        for index_t in ("int", "long long"):
            for ob in (1, 4):
                names.append(f"xconvt_fft_mac<{real}, {index_t}, {ob}>")
    return names


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile(tmp_path, arch):
    body = "\n".join(f"  (void*)&{name}," for name in _instances())
    unit = tmp_path / "instances.cu"
    unit.write_text(f'#include "{SOURCE}"\nvoid* xconvt_instances[] = {{\n{body}\n}};\n')
    cmd = [NVCC, "-std=c++17", f"-arch={arch}",
           f"-DXCONVT_WIDE_MINB={cuda_backend.WIDE_MINB}",
           "-cubin", "-o", str(tmp_path / "out.cubin"), str(unit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("struct, fields", [("FusedArgs", "_FUSED_FIELDS"),
                                            ("Col2imArgs", "_COL2IM_FIELDS"),
                                            ("PointwiseArgs", "_POINTWISE_FIELDS"),
                                            ("GatherArgs", "_GATHER_FIELDS"),
                                            ("TileArgs", "_TILE_FIELDS")])
def test_argument_structs_match_the_host(struct, fields):
    """The host packs each kernel's scalar arguments as int32 fields in a fixed
    order; the C struct must list the same fields in the same order."""
    import re

    text = SOURCE.read_text()
    body = re.search(r"struct " + struct + r" \{(.*?)\};", text, re.S).group(1)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if decl:
            assert decl.startswith("int "), decl
            names += [n.strip() for n in decl[4:].split(",")]
    assert tuple(names) == getattr(cuda_backend, fields)
