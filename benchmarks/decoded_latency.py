"""Model-level latency of the decoded-weight models (PQ, Deep Compression) against float and int8.

    nice -n 5 .venv/bin/python benchmarks/decoded_latency.py [--rounds 15 --runs 20]
        [--before-library /path/to/an/older/libtfcompress_ops.so]

Writes ``benchmarks/results/decoded_latency.json`` and ``.md`` (overwritten;
``decoded_latency_<runtime>.*`` with ``--runtime``).

``TfcPQDecode`` / ``TfcSparseDecode`` are decoded once, when the op library's delegate is
applied, into read-only constant tensors; XNNPACK, applied after it, then takes the convs
like those of the float model. Measured here: batch-1 ``invoke()`` time of each model
through :func:`tfcompress.runtime.Interpreter` at 1 and 2 threads. All interpreters live at
once and the variants are interleaved: each round runs ``--runs`` invokes of every variant in
turn and keeps their median; the table gives the median over rounds (and the spread of the
round medians). ``--before-library`` adds the PQ / DC models under another build of the op
library to the same rounds, e.g. one built from the commit before decoding moved into the
delegate (``git archive COMMIT converters | tar -x -C /tmp/old``, then
``cmake -S /tmp/old/converters -B /tmp/old/build && cmake --build /tmp/old/build``). Each row also says how many
of the model's CONV_2D / FULLY_CONNECTED nodes have their filter consumed by a delegate node
(XNNPACK's partitions; our decoders never take a float filter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MODELS = {
    "float": "models/flowers_float.tflite",
    "int8": "models/flowers_int8.tflite",
    "pq": "models/flowers_pq.tflite",
    "dc": "models/flowers_dc.tflite",
}
THREADS = (1, 2)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=20, help="invokes per variant per round")
    parser.add_argument("--warmup", type=int, default=5, help="invokes before the first round")
    parser.add_argument("--before-library", default=None, help="another libtfcompress_ops.so for PQ / DC")
    parser.add_argument("--runtime", default=None, help="force one runtime (ai_edge_litert, tensorflow, ...)")
    return parser.parse_args()


def delegated_weights(interpreter) -> tuple[int, int]:
    """(weight nodes whose filter a delegate node consumes, all CONV_2D / FULLY_CONNECTED nodes)."""
    ops = interpreter._get_ops_details()
    filters = [int(op["inputs"][1]) for op in ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    consumed = {int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["inputs"]}
    return sum(f in consumed for f in filters), len(filters)


def op_counts(interpreter) -> dict[str, int]:
    """How many nodes of each op the model has (delegate nodes left out)."""
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "DELEGATE":
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def make_variant(path: Path, threads: int, library: str | None, runtime: str | None):
    """An interpreter with one batch-1 input set, and its XNNPACK coverage."""
    import numpy as np

    from tfcompress.runtime import OPS_LIBRARY_ENV_VAR, Interpreter

    previous = os.environ.get(OPS_LIBRARY_ENV_VAR)
    if library:
        os.environ[OPS_LIBRARY_ENV_VAR] = library
    try:
        interpreter = Interpreter(path, num_threads=threads, runtime=runtime)
    finally:
        if previous is None:
            os.environ.pop(OPS_LIBRARY_ENV_VAR, None)
        else:
            os.environ[OPS_LIBRARY_ENV_VAR] = previous
    detail = interpreter.get_input_details()[0]
    image = np.random.default_rng(0).uniform(0, 255, detail["shape"])
    interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
    return interpreter, delegated_weights(interpreter)


def time_invokes(interpreter, runs: int) -> float:
    """Median wall time of ``runs`` invokes, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def markdown(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# Decoded-weight models: latency against float and int8",
        "",
        "Reproduce: `nice -n 5 .venv/bin/python benchmarks/decoded_latency.py"
        + (f" --runtime {result['runtime']}" if result["forced_runtime"] else "")
        + (" --before-library ..." if result["before_library"] else "")
        + "`.",
        f"Batch-1 `invoke()` through `tfcompress.runtime.Interpreter` ({result['runtime']}), "
        f"{result['rounds']} interleaved rounds x {result['runs']} invokes; median of the round medians "
        "(min-max of the round medians). "
        f"Load average before / after: {result['load_before']} / {result['load_after']} on "
        f"{result['cpus']} CPUs shared with other jobs: compare rows of the same run, not absolute numbers.",
        "",
        "| model | bytes | ms 1 thread | x float | ms 2 threads | x float | weight ops in XNNPACK |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        cells = [name, f"{row['bytes']:,}"]
        for threads in THREADS:
            t = row["threads"][str(threads)]
            ratio = t["ms_median"] / rows["float"]["threads"][str(threads)]["ms_median"]
            cells += [f"{t['ms_median']:.2f} ({t['ms_min']:.2f}-{t['ms_max']:.2f})", f"{ratio:.2f}"]
        cells.append(row["delegated_weight_ops"])
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "`pq` / `dc` decode their kernels once, when the op library's delegate is applied, into read-only",
        "constants; XNNPACK then takes their convs. One structural difference to float is left: the",
        "converter cannot fold a BatchNorm into a filter that is not a constant of the file, so each",
        "compressed conv is followed by a MUL and an ADD (inside the XNNPACK partition); `ops` in the",
        "JSON counts each model's nodes.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    import numpy as np

    from tfcompress.fileio import write_text_atomic
    from tfcompress.runtime import available_runtimes

    args = parse_args()
    variants = {name: (ROOT / rel, None) for name, rel in MODELS.items() if (ROOT / rel).is_file()}
    if args.before_library:
        for name in [name for name in ("pq", "dc") if name in variants]:
            variants[f"{name} (--before-library)"] = (variants[name][0], args.before_library)
    if "float" not in variants:
        raise SystemExit("models/flowers_float.tflite is needed as the baseline")
    load_before = [round(x, 2) for x in os.getloadavg()]
    interpreters = {}
    coverage = {}
    ops = {}
    for name, (path, library) in variants.items():
        for threads in THREADS:
            interpreter, covered = make_variant(path, threads, library, args.runtime)
            for _ in range(args.warmup):
                interpreter.invoke()
            interpreters[(name, threads)] = interpreter
            coverage[name] = f"{covered[0]}/{covered[1]}"
            ops[name] = op_counts(interpreter)
    medians: dict[tuple[str, int], list[float]] = {key: [] for key in interpreters}
    for round_index in range(args.rounds):
        for key, interpreter in interpreters.items():
            medians[key].append(time_invokes(interpreter, args.runs))
        print(f"round {round_index + 1}/{args.rounds}", flush=True)
    rows = {}
    for name, (path, library) in variants.items():
        rows[name] = {
            "file": str(path.relative_to(ROOT)),
            "library": library or "default",
            "bytes": path.stat().st_size,
            "delegated_weight_ops": coverage[name],
            "ops": ops[name],
            "threads": {
                str(threads): {
                    "ms_median": float(np.median(medians[(name, threads)])),
                    "ms_min": float(np.min(medians[(name, threads)])),
                    "ms_max": float(np.max(medians[(name, threads)])),
                    "round_medians": medians[(name, threads)],
                }
                for threads in THREADS
            },
        }
    result = {
        "runtime": args.runtime or available_runtimes()[0],
        "forced_runtime": bool(args.runtime),
        "rounds": args.rounds,
        "runs": args.runs,
        "before_library": args.before_library,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "decoded_latency" + (f"_{args.runtime}" if args.runtime else "")
    write_text_atomic(RESULTS / f"{stem}.json", json.dumps(result, indent=1) + "\n", force=True)
    text = markdown(result)
    write_text_atomic(RESULTS / f"{stem}.md", text, force=True)
    print(text)


if __name__ == "__main__":
    main()
