"""Writes the wgmma wrappers (xmma::Wg<DT, N>::mma) that kernels/mma.cu holds
between the GENERATED markers: python probe/gen_wgmma.py (rewrites the file)."""
import re
from pathlib import Path

PATH = Path(__file__).resolve().parent.parent / "xconvt/backends/cuda/kernels/mma.cu"
NS = (32, 48, 64, 96, 128, 192, 256)
TYPES = {0: ("tf32.tf32", 8, ""), 1: ("f16.f16", 16, ", 0, 0"), 2: ("bf16.bf16", 16, ", 0, 0")}


def wrapper(dt, n):
    ty, k, trans = TYPES[dt]
    nreg = n // 2
    regs = ", ".join(f"%{i}" for i in range(nreg))
    outs = ", ".join(f'"+f"(d[{i}])' for i in range(nreg))
    return (f"template <> struct Wg<{dt}, {n}> {{\n"
            f"  static __device__ __forceinline__ void mma(float (&d)[{nreg}], unsigned long long da,\n"
            f"                                             unsigned long long db) {{\n"
            f"    asm volatile(\n"
            f"        \"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 2}, 0;\\n\"\n"
            f"        \"wgmma.mma_async.sync.aligned.m64n{n}k{k}.f32.{ty} \"\n"
            f"        \"{{{regs}}}, \"\n"
            f"        \"%{nreg}, %{nreg + 1}, p, 1, 1{trans};\\n}}\\n\"\n"
            f"        : {outs}\n"
            f"        : \"l\"(da), \"l\"(db), \"n\"(1));\n"
            f"  }}\n}};\n")


def main():
    body = "template <int DT, int N> struct Wg;\n" + "".join(
        wrapper(dt, n) for dt in TYPES for n in NS)
    text = PATH.read_text()
    new = re.sub(r"(// BEGIN GENERATED wgmma \(probe/gen_wgmma.py\)\n).*?(// END GENERATED wgmma\n)",
                 lambda m: m.group(1) + body + m.group(2), text, flags=re.S)
    PATH.write_text(new)


if __name__ == "__main__":
    main()
