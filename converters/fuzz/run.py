"""Build the libFuzzer targets with clang, seed them from the shipped models, run them.

    python converters/fuzz/run.py --seconds 30                   # CI (.ci/run): 30 s per target
    python converters/fuzz/run.py --seconds 600 --report benchmarks/results/fuzz.md   # make fuzz

Steps: configure ``build/fuzz`` with ``-DTFCOMPRESS_FUZZ=ON`` and clang++ (``fuzz.cmake``), build
every target, write the seed corpora (``seed_corpus.py``), replay the saved crash inputs of
``converters/fuzz/regressions/<target>/`` (each must now run clean), then fuzz each target for
``--seconds`` with the corpus kept in ``build/fuzz/corpus/<target>`` between runs. A crash
leaves its input in ``build/fuzz/artifacts/<target>/``. Exit status 1 when a target crashed or
a regression input fails again.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_corpus import OP_TARGETS, write_seeds  # a sibling module of this script

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "fuzz"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
TARGETS = ("fuzz_options", "fuzz_huffman", *OP_TARGETS.values())
WHAT = {
    "fuzz_options": "flexbuffer custom options reader (every op's Prepare starts with it)",
    "fuzz_huffman": "Deep Compression Huffman decoder (SparseDecode) on raw streams",
    "fuzz_binary_conv2d": "TfcBinaryConv2D options + Prepare, Invoke when small",
    "fuzz_binary_dense": "TfcBinaryDense options + Prepare, Invoke when small",
    "fuzz_pq_decode": "TfcPQDecode options + PQ code / codebook decoder",
    "fuzz_pq_dense": "TfcPQDense options + Prepare (codes unpacked), Invoke when small",
    "fuzz_sparse_decode": "TfcSparseDecode options + Huffman streams decoder",
}


@dataclass
class Result:
    """One target's run: libFuzzer's final counters and whether it crashed."""

    target: str
    executions: int
    coverage: int
    features: int
    corpus: int
    seconds: float
    crashed: bool
    artifacts: list[str]


def build(jobs: int) -> None:
    """Configure and build every fuzz target in ``build/fuzz``."""
    clang = shutil.which("clang++")
    if clang is None:
        raise SystemExit("fuzz: clang++ not found; apt-get install clang (Debian/Ubuntu)")
    subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT / "converters"),
            "-B",
            str(BUILD),
            f"-DCMAKE_CXX_COMPILER={clang}",
            "-DTFCOMPRESS_FUZZ=ON",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DTFCOMPRESS_HEADERS_DIR={ROOT / 'build' / 'tflite-headers'}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(["cmake", "--build", str(BUILD), "--parallel", str(jobs), "--target", *TARGETS], check=True)


def replay_regressions(target: str) -> list[str]:
    """Run the target once on each saved crash input of ``regressions/<target>``; the ones that fail."""
    inputs = sorted((REGRESSIONS / target).glob("*")) if (REGRESSIONS / target).is_dir() else []
    failed = []
    for item in inputs:
        run = subprocess.run([str(BUILD / target), str(item)], capture_output=True, text=True)
        if run.returncode != 0:
            failed.append(f"{item.relative_to(ROOT)}: {run.stderr.strip().splitlines()[-1:]}")
    return failed


def _last_int(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def fuzz(target: str, seconds: int) -> Result:
    """Fuzz ``target`` for ``seconds`` from its corpus and seeds; libFuzzer's counters."""
    corpus = BUILD / "corpus" / target
    artifacts = BUILD / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    run = subprocess.run(
        [
            str(BUILD / target),
            f"-max_total_time={seconds}",
            "-print_final_stats=1",
            "-timeout=10",
            "-rss_limit_mb=4096",
            "-malloc_limit_mb=2048",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
            str(BUILD / "seeds" / target),
        ],
        capture_output=True,
        text=True,
    )
    log = run.stderr
    (BUILD / f"{target}.log").write_text(log)
    return Result(
        target=target,
        executions=_last_int(r"stat::number_of_executed_units: (\d+)", log),
        coverage=_last_int(r"cov: (\d+)", log),
        features=_last_int(r" ft: (\d+)", log),
        corpus=_last_int(r"corp: (\d+)", log),
        seconds=time.monotonic() - start,
        crashed=run.returncode != 0,
        artifacts=[str(p.relative_to(ROOT)) for p in artifacts.glob("*")] if run.returncode != 0 else [],
    )


def markdown(results: list[Result], seconds: int) -> str:
    """The table of one run, for ``benchmarks/results/fuzz.md``."""
    lines = [
        "# Fuzzing the native op library",
        "",
        "Written by `converters/fuzz/run.py` (`make fuzz`); libFuzzer with AddressSanitizer and",
        "UndefinedBehaviorSanitizer (clang), seeded from the custom-op nodes of the shipped",
        f"`flowers_pq`, `flowers_dc` and `flowers_binary` files, {seconds} s per target on one core.",
        "`cov` is libFuzzer's count of covered edges (`cov:`), `ft` its features.",
        "",
        "| target | what it covers | executions | cov | ft | corpus | crashes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| `{r.target}` | {WHAT[r.target]} | {r.executions:,} | {r.coverage} | {r.features} | {r.corpus} "
            f"| {1 if r.crashed else 0} |"
        )
    lines.append(f"| total | | {sum(r.executions for r in results):,} | | | | {sum(r.crashed for r in results)} |")
    return "\n".join(lines) + "\n\n" + regressions_markdown()


def regressions_markdown() -> str:
    """The crashes found and fixed: the saved inputs that every run replays first."""
    saved = sorted(p.relative_to(REGRESSIONS) for p in REGRESSIONS.glob("*/*"))
    lines = [
        "Crashes found and fixed (inputs kept in `converters/fuzz/regressions/`, replayed first by every run):",
        "",
    ]
    return "\n".join(lines + [f"- `{path}`" for path in saved]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build, seed, replay the regressions and fuzz; print the table; exit 1 on any crash."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--report", type=Path, help="write the markdown table here")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs")
    args = parser.parse_args(argv)
    build(args.jobs)
    write_seeds(BUILD / "seeds")
    failed = [f for target in args.targets for f in replay_regressions(target)]
    for line in failed:
        print(f"fuzz: regression input crashes again: {line}", file=sys.stderr)
    results = []
    for target in args.targets:
        result = fuzz(target, args.seconds)
        print(
            f"{target}: {result.executions:,} executions, cov {result.coverage}, "
            f"{'CRASH ' + ', '.join(result.artifacts) if result.crashed else 'no crash'}",
            flush=True,
        )
        results.append(result)
    table = markdown(results, args.seconds)
    print(table)
    if args.report:
        args.report.write_text(table)
    return 1 if failed or any(r.crashed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
