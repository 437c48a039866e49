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


def cpu_flags(cpuinfo: str) -> set[str]:
    """The ``flags`` of the first processor of ``/proc/cpuinfo`` text (empty on ARM: it says ``Features``)."""
    lines = (line for line in cpuinfo.splitlines() if line.startswith("flags"))
    return next((set(line.split(":", 1)[1].split()) for line in lines), set())


def describe_cpu(cpuinfo: str) -> str:
    """``model name`` of ``/proc/cpuinfo`` text and the SIMD extensions of :data:`SIMD_FLAGS` it has."""
    lines = cpuinfo.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = cpu_flags(cpuinfo)
    present = [label for flag, label in SIMD_FLAGS if flag in flags]
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name} [{', '.join(present) or 'no AVX2'}{'' if 'avx512f' in flags else '; no AVX-512'}]"


def this_cpu() -> str:
    """:func:`describe_cpu` of this machine (the platform's name where there is no ``/proc/cpuinfo``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        return describe_cpu(cpuinfo.read_text())
    return platform.processor() or platform.machine()


def xnnpack_paths(cpuinfo: str) -> str:
    """The ISA of the microkernels XNNPACK picks for float and int8 on a CPU with these flags.

    XNNPACK chooses at start-up from the CPU's own report (cpuid) and offers no switch: a file is
    timed with AVX-512 kernels wherever the CPU has them. Float: AVX-512F, else AVX2 + FMA3; int8
    (QS8/QC8 convolutions): AVX512-VNNI, else AVX-512 (AVX512BW/SKX), else AVX2.
    """
    flags = next(
        (set(line.split(":", 1)[1].split()) for line in cpuinfo.splitlines() if line.startswith("flags")), set()
    )
    if not flags:
        return "XNNPACK: the CPU's own kernels (no x86 flags)"
    float_path = "AVX-512F" if "avx512f" in flags else "AVX2+FMA3" if "avx2" in flags else "SSE"
    int8_paths = (("avx512_vnni", "AVX512-VNNI"), ("avx512bw", "AVX-512 (SKX)"), ("avx2", "AVX2"))
    int8_path = next((label for flag, label in int8_paths if flag in flags), "SSE")
    return f"XNNPACK (picked by the CPU, not forceable): float {float_path}, int8 {int8_path}"


def kernel_paths() -> str:
    """Which kernels ran: the tfcompress ops' (and whether ``$TFCOMPRESS_KERNEL`` forced it), and XNNPACK's."""
    import os

    from tfcompress.errors import TfcompressError

    try:
        from tfcompress.native import default_kernel

        ours = default_kernel()
    except (OSError, TfcompressError):
        ours = "op library not built"
    forced = os.environ.get("TFCOMPRESS_KERNEL")
    ours_note = f"forced by TFCOMPRESS_KERNEL={forced}" if forced else "picked by the CPU"
    cpuinfo = Path("/proc/cpuinfo")
    xnnpack = xnnpack_paths(cpuinfo.read_text()) if cpuinfo.is_file() else "XNNPACK: the CPU's own kernels"
    return f"tfcompress ops: {ours} ({ours_note}); {xnnpack}"
