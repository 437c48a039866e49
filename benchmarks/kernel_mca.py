"""Static throughput of the binary conv inner loops (AVX2 and NEON) with llvm-mca, against the floor.

    .venv/bin/python benchmarks/kernel_mca.py [--baseline REV] [--force]

Compiles ``converters/src/kernels/kernel_avx2.cc`` (g++, the library's flags) and
``kernel_neon.cc`` (``aarch64-linux-gnu-g++ -mcpu=...``) to assembly, takes the inner loop
(the loop with the most popcount instructions: ``vpshufb`` / ``cnt``, whose body ends in a
branch back to its own label) and runs ``llvm-mca -mcpu=CPU`` on it. Each ``vpshufb`` (AVX2,
nibble table) and each ``cnt v.16b`` (NEON) counts 128 bits of XNOR-popcount, so cycles per
512 bits = cycles per iteration * 512 / bits per iteration.

The floor is the same machine model run on the arithmetic alone, with independent
accumulators and no loads: per 512 bits, 4 x (VPXOR + VPSHUFB + VPADDB) for AVX2 (nibble
planes: the masking and shifting are done at packing) and 4 x (EOR + CNT + ADD) for NEON.
``% of floor`` is floor / measured (100% = at the floor).

``--baseline REV`` adds the same figures for the kernels of git revision REV (e.g. the commit
before a change). Needs ``llvm-mca`` (Debian ``llvm``) and ``g++-aarch64-linux-gnu``.
Writes ``benchmarks/results/kernel_mca.json`` and ``kernel_mca.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tfcompress.fileio import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KERNELS = ROOT / "converters" / "src" / "kernels"
HEADERS = ["binary_conv.h", "conv_driver.h", "kernel_sets.h"]
ITERATIONS = 1000


# kernel set: (source, compiler, flags, popcount mnemonic, llvm-mca triple, CPUs, floor loop)
TARGETS = {
    "avx2": (
        "kernel_avx2.cc",
        "g++",
        ["-mavx2", "-mfma", "-mpopcnt", "-fno-tree-pre", "-DTFCOMPRESS_HAVE_AVX2"],
        "vpshufb",
        "x86_64-linux-gnu",
        ["znver2", "znver3", "haswell", "skylake"],
        "\n".join(
            f"vpxor %ymm{8 + i}, %ymm{12 + i}, %ymm{4 + i}\n"
            f"vpshufb %ymm{4 + i}, %ymm15, %ymm{4 + i}\n"
            f"vpaddb %ymm{4 + i}, %ymm{i}, %ymm{i}"
            for i in range(4)
        ),
    ),
    "neon": (
        "kernel_neon.cc",
        "aarch64-linux-gnu-g++",
        ["-DTFCOMPRESS_HAVE_NEON"],
        "cnt",
        "aarch64-linux-gnu",
        ["cortex-a72", "cortex-a76"],
        "\n".join(
            f"eor v{8 + i}.16b, v{16 + i}.16b, v{20 + i}.16b\n"
            f"cnt v{8 + i}.16b, v{8 + i}.16b\n"
            f"add v{i}.16b, v{i}.16b, v{8 + i}.16b"
            for i in range(4)
        ),
    ),
}


def _assembly(source_dir: Path, kernel: str, cpu: str) -> str:
    source, compiler, flags, *_ = TARGETS[kernel]
    arch = [f"-mcpu={cpu}"] if kernel == "neon" else []
    command = [compiler, "-std=c++17", "-O3", *arch, *flags, f"-I{source_dir.parent}", "-S", "-o", "-"]
    return subprocess.run([*command, str(source_dir / source)], capture_output=True, text=True, check=True).stdout


def inner_loop(assembly: str, mnemonic: str) -> list[str]:
    """The instructions of the loop with the most ``mnemonic`` instructions (label to back branch)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in assembly.splitlines():
        label = re.match(r"^(\.L\w+):", line)
        if label:
            blocks.append((label.group(1), []))
        elif blocks and line.strip() and not line.strip().startswith((".", "#", "//")):
            blocks[-1][1].append(line.strip())
    best: list[str] = []
    for label, lines in blocks:
        body = []
        for line in lines:
            body.append(line)
            if re.match(rf"^(j\w+|b\.?\w*|cbn?z|tbn?z)\s.*{re.escape(label)}$", line):
                break
        else:
            continue  # not a loop: no branch back to its label
        count = sum(line.split()[0] == mnemonic for line in body)
        if count > sum(line.split()[0] == mnemonic for line in best):
            best = body
    return best


def mca_cycles(instructions: str, triple: str, cpu: str) -> float:
    """llvm-mca's cycles per iteration of ``instructions`` (run as a loop body)."""
    done = subprocess.run(
        ["llvm-mca", f"-mtriple={triple}", f"-mcpu={cpu}", f"-iterations={ITERATIONS}"],
        input=instructions + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    total = re.search(r"Total Cycles:\s+(\d+)", done.stdout)
    return int(total.group(1)) / ITERATIONS


def measure(source_dir: Path, label: str) -> list[dict]:
    """One row per (kernel set, CPU) for the kernel sources in ``source_dir``."""
    rows = []
    for kernel, (_, _, _, mnemonic, triple, cpus, floor_loop) in TARGETS.items():
        for cpu in cpus:
            loop = inner_loop(_assembly(source_dir, kernel, cpu), mnemonic)
            bits = 128 * sum(line.split()[0] == mnemonic for line in loop)
            cycles = mca_cycles("\n".join(loop), triple, cpu)
            floor = mca_cycles(floor_loop, triple, cpu)
            per_512 = cycles * 512 / bits
            rows.append(
                {
                    "kernels": label,
                    "kernel": kernel,
                    "cpu": cpu,
                    "loop_instructions": len(loop),
                    "bits_per_iteration": bits,
                    "cycles_per_iteration": cycles,
                    "cycles_per_512_bits": per_512,
                    "floor_cycles_per_512_bits": floor,
                    "percent_of_floor": 100 * floor / per_512,
                }
            )
    return rows


def _sources_at(revision: str, directory: Path) -> Path:
    """The kernel sources of git revision ``revision``, written under ``directory/kernels``."""
    target = directory / "kernels"
    target.mkdir(parents=True)
    for name in [*HEADERS, *(spec[0] for spec in TARGETS.values())]:
        path = f"converters/src/kernels/{name}"
        command = ["git", "show", f"{revision}:{path}"]
        shown = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        (target / name).write_text(shown.stdout)
    return target


def to_markdown(rows: list[dict]) -> str:
    version = subprocess.run(["llvm-mca", "--version"], capture_output=True, text=True).stdout.splitlines()[1].strip()
    lines = [
        "# Binary conv inner loops under llvm-mca (static throughput)",
        "",
        "`.venv/bin/python benchmarks/kernel_mca.py` "
        f"({version}). "
        "Cycles per 512 bits of XNOR-popcount in the inner loop (one receptive-field step of a register block); "
        "floor: the same model on the arithmetic alone (AVX2: 4 x VPXOR + VPSHUFB + VPADDB on nibble planes; "
        "NEON: 4 x EOR + CNT + ADD), no loads. `% of floor` = floor / kernel.",
        "",
        "| kernels | set | CPU model | loop instructions | bits / iteration | cycles / iteration | cycles / 512 bits "
        "| floor (cycles / 512 bits) | % of floor |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kernels']} | {r['kernel']} | {r['cpu']} | {r['loop_instructions']} | {r['bits_per_iteration']} | "
            f"{r['cycles_per_iteration']:.2f} | {r['cycles_per_512_bits']:.2f} | "
            f"{r['floor_cycles_per_512_bits']:.2f} | {r['percent_of_floor']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision whose kernels are measured too (e.g. HEAD~3)")
    parser.add_argument("--output", default=str(RESULTS / "kernel_mca"), help="path without suffix for .json / .md")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    args = parser.parse_args()
    for tool in ("llvm-mca", "g++", "aarch64-linux-gnu-g++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"kernel_mca: {tool} not found (apt-get install llvm g++ g++-aarch64-linux-gnu)")
    rows = []
    if args.baseline:
        with tempfile.TemporaryDirectory() as directory:
            rows += measure(_sources_at(args.baseline, Path(directory)), f"`{args.baseline}`")
    rows += measure(KERNELS, "this checkout")
    write_text_atomic(f"{args.output}.json", json.dumps(rows, indent=2) + "\n", args.force)
    write_text_atomic(f"{args.output}.md", to_markdown(rows), args.force)
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
