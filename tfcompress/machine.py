"""Where a figure was measured: the CPU and the SIMD extensions its kernels pick paths by."""

from __future__ import annotations

import platform
from pathlib import Path

# The instruction sets XNNPACK and our kernels pick paths by: int8 runs much faster with VNNI,
# the binary conv with VPOPCNTDQ, bfloat16 with AVX512-BF16; the same file differs across them.
SIMD_FLAGS = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512F"),
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx512_bf16", "AVX512-BF16"),
    ("avx512_vpopcntdq", "AVX512-VPOPCNTDQ"),
)


def describe_cpu(cpuinfo: str) -> str:
    """``model name`` of ``/proc/cpuinfo`` text and the SIMD extensions of :data:`SIMD_FLAGS` it has."""
    lines = cpuinfo.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    present = [label for flag, label in SIMD_FLAGS if flag in flags]
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name} [{', '.join(present) or 'no AVX2'}{'' if 'avx512f' in flags else '; no AVX-512'}]"


def this_cpu() -> str:
    """:func:`describe_cpu` of this machine (the platform's name where there is no ``/proc/cpuinfo``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        return describe_cpu(cpuinfo.read_text())
    return platform.processor() or platform.machine()
