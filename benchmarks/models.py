"""Every shipped model in one run: top-1 on flowers5 test.txt, bytes, batch-1 latency at 1 and 2 threads.

    nice -n 5 .venv/bin/python benchmarks/models.py [--rounds 15 --runs 20] [--threads 1 2]
        [--models flowers_float flowers_pq ...] [--skip-accuracy]

Writes ``benchmarks/results/models.json`` and ``models.md`` (overwritten, atomically); a run
with ``--models`` or ``--skip-accuracy`` writes only what it measured. ``scripts/models_index.py``
takes the figures of ``models/README.md`` from the JSON for every file whose bytes and sha256
still match.

Every ``models/*.tflite`` goes through :func:`tfcompress.runtime.Interpreter` (via
:class:`tfcompress.evaluate.TFLiteClassifier`, with the op library for the custom ops). Top-1:
one pass over the 650 images of ``test.txt`` at 1 thread, the model's output ``i`` being line
``i`` of ``models/labels.txt``. Latency: batch-1 ``run`` (set input, invoke, read output) of one
fixed image, timed by :func:`tfcompress.latency.interleaved_latency`: all interpreters (one per
model and thread count) live at once; each of ``--rounds`` rounds times every one of them for
``--runs`` calls, in an order rotated from round to round, so all models see the same load. The
table gives the median of the round medians and the 90th percentile of all calls; the JSON also
keeps every round median. The load average before and after the timing is recorded: compare the
rows of one run, not absolute numbers across runs.

JSON: the conditions (``date``, ``cpu``, ``cpus``, ``runtime``, ``runtime_version``, ``load_before``,
``load_after``, ``rounds``, ``runs``, ``threads``, ``command``) and ``models``: per file name its
``bytes``, ``sha256``, ``custom_ops``, ``top1`` (a fraction; absent with ``--skip-accuracy``),
``images``, ``vs_float`` (the paired top-1 difference to ``flowers_float.tflite`` of the same input
size on the same images, with its 95% interval and McNemar p-value: :mod:`tfcompress.paired`) and
``latency`` per thread count (``ms_median``, ``ms_p90``, ``ms_min`` / ``ms_max`` of the round
medians, ``round_medians``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "android_demo/raspberry_pi"))  # flowerpi.delegation

import numpy as np  # noqa: E402
from flowerpi.delegation import delegated_nodes  # noqa: E402

from tfcompress.data import ImageSet, load_split, resolve_data_dir  # noqa: E402
from tfcompress.evaluate import TFLiteClassifier  # noqa: E402
from tfcompress.fileio import write_text_atomic  # noqa: E402
from tfcompress.latency import interleaved_latency  # noqa: E402
from tfcompress.machine import kernel_paths, this_cpu  # noqa: E402
from tfcompress.paired import paired_difference  # noqa: E402
from tfcompress.runtime import custom_op_names, ops_library_path  # noqa: E402

BASELINE = "flowers_float.tflite"
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved latency rounds")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per model, thread count and round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per interpreter before the rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    parser.add_argument("--models", nargs="+", help="only these (file name or stem, e.g. flowers_pq)")
    parser.add_argument("--skip-accuracy", action="store_true", help="latency and bytes only")
    parser.add_argument("--data", help="flowers5 folder (default: ../shared/datasets/flowers5)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models", help="*.tflite and labels.txt")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results", help="for models.json / .md")
    parser.add_argument(
        "--kernel",
        choices=("auto", "avx2", "avx512", "scalar"),
        default="auto",
        help="the tfcompress ops' kernel set (TFCOMPRESS_KERNEL; avx2: a phone-like x86 without AVX-512; "
        "default: auto, the CPU's best)",
    )
    args = parser.parse_args(argv)
    if args.kernel != "auto":  # read by the op library when it first runs a kernel
        os.environ["TFCOMPRESS_KERNEL"] = args.kernel
    if args.rounds < 1 or args.runs < 1 or min(args.threads) < 1:
        parser.error("--rounds, --runs and --threads must be >= 1")
    args.threads = sorted(set(args.threads))
    return args


def find_models(models_dir: Path, names: list[str] | None) -> list[Path]:
    """The ``.tflite`` files of ``models_dir``, sorted, or those named (by file name or stem)."""
    paths = sorted(models_dir.glob("*.tflite"))
    if not names:
        if not paths:
            raise SystemExit(f"no .tflite model in {models_dir}")
        return paths
    by_name = {p.name: p for p in paths} | {p.stem: p for p in paths}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(f"not in {models_dir}: {', '.join(unknown)} (have {', '.join(p.stem for p in paths)})")
    return sorted({by_name[name] for name in names})


def describe(path: Path) -> dict:
    """File facts: bytes, sha256 (what ``models_index.py`` checks), custom ops."""
    content = path.read_bytes()
    return {
        "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "custom_ops": sorted(set(custom_op_names(content))),
    }


def correct(classifier: TFLiteClassifier, data, labels: list[str]) -> np.ndarray:
    """Per image of ``data`` (an :class:`~tfcompress.data.ImageSet`): is the top-1 right (output i = ``labels[i]``)."""
    missing = sorted(set(data.class_names) - set(labels))
    if missing:
        raise SystemExit(f"classes {', '.join(missing)} of the data are not in labels.txt ({', '.join(labels)})")
    truth = np.array([labels.index(data.class_names[label]) for label in data.labels])
    return classifier.predict(data.images).argmax(axis=1) == truth


def environment(runtime: str) -> dict:
    """Where the figures were measured: CPU (with its SIMD extensions), runtime and its version, date."""
    cpu = this_cpu()
    try:
        version = metadata.version(DISTRIBUTIONS.get(runtime, runtime))
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "runtime": runtime,
        "runtime_version": version,
        "ops_library": ops_library_path(),
        "kernel_paths": kernel_paths(),
        "python": platform.python_version(),
    }


def measure(args: argparse.Namespace, command: str) -> dict:
    """Run the benchmark; the JSON-ready result (``command``: how it was run, for the record)."""
    paths = find_models(args.models_dir, args.models)
    labels = [line.strip() for line in (args.models_dir / "labels.txt").read_text().splitlines() if line.strip()]
    classifiers = {(p.name, t): TFLiteClassifier(p, t) for p in paths for t in args.threads}
    rows = {p.name: describe(p) for p in paths}
    images: dict[int, ImageSet] = {}
    hits: dict[str, np.ndarray] = {}
    inputs = {}
    for path in paths:
        row = rows[path.name]
        classifier = classifiers.get((path.name, 1)) or TFLiteClassifier(path, 1)
        size = int(classifier.input["shape"][1])
        row["input_size"] = size
        taken, nodes = delegated_nodes(classifier.interpreter)
        row["delegated_nodes"] = f"{taken}/{nodes}"
        if not args.skip_accuracy:
            if size not in images:
                images[size] = load_split(args.data, "test", size)
            hits[path.name] = correct(classifier, images[size], labels)
            row["top1"] = float(np.mean(hits[path.name]))
            row["images"] = len(images[size])
            print(f"{path.name}: top-1 {100 * row['top1']:.2f}% on {row['images']} images", flush=True)
        image = np.random.default_rng(0).uniform(0, 255, (size, size, 3))
        for threads in args.threads:
            inputs[(path.name, threads)] = classifiers[(path.name, threads)].prepare(image)
        row["latency"] = {}
    if BASELINE in hits:
        for name, row in rows.items():
            if name in hits and row["input_size"] == rows[BASELINE]["input_size"]:
                row["vs_float"] = paired_difference(hits[name], hits[BASELINE]).to_dict()
    load_before = [round(x, 2) for x in os.getloadavg()]
    latency = interleaved_latency(
        {key: (lambda c=c, x=inputs[key]: c.run(x)) for key, c in classifiers.items()},
        args.rounds,
        args.runs,
        args.warmup,
        progress=lambda done, total: print(f"round {done}/{total}", flush=True),
    )
    load_after = [round(x, 2) for x in os.getloadavg()]
    for (name, threads), figures in latency.items():
        rows[name]["latency"][str(threads)] = figures.to_dict()
    runtime = next(iter(classifiers.values())).runtime
    data_dir = None if args.skip_accuracy else str(resolve_data_dir(args.data))
    return {
        **environment(runtime),
        "command": command,
        "load_before": load_before,
        "load_after": load_after,
        "rounds": args.rounds,
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": args.threads,
        "accuracy": None if args.skip_accuracy else {"split": "test", "threads": 1, "data": data_dir},
        "models": rows,
    }


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if value and reference else "-"


def _versus(row: dict) -> str:
    """``-1.54 [-2.9, -0.2]``: the paired top-1 difference to the float model and its interval."""
    pair = row.get("vs_float")
    if not pair:
        return "-"
    return f"{pair['points']:+.2f} [{pair['low']:+.1f}, {pair['high']:+.1f}]"


def markdown(result: dict) -> str:
    """The ``models.md`` table (and the conditions it was measured under)."""
    rows = result["models"]
    threads = [str(t) for t in result["threads"]]
    speed_threads = "1" if "1" in threads else threads[0]
    base = rows.get(BASELINE)
    head = ["model", "custom ops", "nodes delegated", "input px", "top-1", "top-1 vs float, points (95% CI)", "bytes"]
    head.append("x smaller than float")
    head += [f"ms {t} thread{'s' * (t != '1')} (p90)" for t in threads] + [
        f"speed-up vs float at {speed_threads} thread{'s' * (speed_threads != '1')}"
    ]
    lines = [
        "# Shipped models: top-1, bytes, latency (one run)",
        "",
        f"Reproduce: `nice -n 5 .venv/bin/python {result['command']}`.",
        f"Measured {result['date']} on {result['cpu']} ({result['cpus']} CPUs, shared with other jobs), "
        f"{result['runtime']} {result['runtime_version']}. Kernels: {result.get('kernel_paths', 'not recorded')}. "
        "Nodes delegated: the nodes XNNPACK and the tfcompress op delegate took, of the model's. "
        "Top-1: flowers5 `test.txt` at 1 thread. Latency: "
        f"batch 1, {result['rounds']} interleaved rounds x {result['runs']} calls of every model and thread "
        "count; median of the round medians (90th percentile of all calls). Load average (1, 5, 15 min) "
        f"before / after the timing: {result['load_before']} / {result['load_after']}: compare rows of this "
        "run, not absolute numbers across runs. Speed-ups and top-1 differences are against the float model of "
        "the same input size only; the difference is paired (same images), with its 95% interval "
        "(`tfcompress.paired`).",
        "",
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(head) - 2),
    ]
    for name, row in rows.items():
        accuracy = f"{100 * row['top1']:.2f}%" if row.get("top1") is not None else "-"
        size = row.get("input_size")
        cells = [f"`{name}`", ", ".join(row["custom_ops"]) or "-", row.get("delegated_nodes", "?")]
        cells += [str(size or "?"), accuracy, _versus(row)]
        cells.append(f"{row['bytes']:,}")
        cells.append(_ratio(base["bytes"], row["bytes"]) if base else "-")
        for t in threads:
            lat = row["latency"][t]
            cells.append(f"{lat['ms_median']:.2f} ({lat['ms_p90']:.2f})")
        reference = base["latency"][speed_threads]["ms_median"] if base else None
        if base and size != base.get("input_size"):
            cells.append(f"- (input {size} px, float {base.get('input_size')} px)")
        else:
            cells.append(_ratio(reference, row["latency"][speed_threads]["ms_median"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = measure(args, "benchmarks/models.py " + shlex.join(sys.argv[1:] if argv is None else argv))
    args.output.mkdir(parents=True, exist_ok=True)
    stem = "models" if args.kernel == "auto" else f"models_{args.kernel}"
    write_text_atomic(args.output / f"{stem}.json", json.dumps(result, indent=1) + "\n", force=True)
    text = markdown(result)
    write_text_atomic(args.output / f"{stem}.md", text, force=True)
    print(text)
    return result


if __name__ == "__main__":
    main()
