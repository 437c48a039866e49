"""Product-quantization figures: EM speed, accuracy against size, and the PQ dense op against XNNPACK.

    nice -n 5 .venv/bin/python benchmarks/pq.py em     [--teacher models/flowers_float.keras]
    nice -n 5 .venv/bin/python benchmarks/pq.py curve  [--teacher ...]
    nice -n 5 .venv/bin/python benchmarks/pq.py dense

Each writes ``benchmarks/results/pq_<part>.json`` and ``.md`` (overwritten; the curve's part
name carries its global finetune steps, ``pq_curve_gs<steps>``).

- ``em``: the activation-aware EM for every layer of the teacher, without finetuning
  (input capture and EM timed apart), and the same with plain k-means.
- ``curve``: top-1 on flowers5 test.txt through the runtime against ``.tflite`` bytes, for
  small and large blocks (and k = 256 / 64), after EM and a short global finetune.
- ``dense``: batch-1 latency of ``TfcPQDense`` against the builtin FULLY_CONNECTED under
  XNNPACK, 4096x4096 and 1024x1024, at 1 and 2 threads (median of repeated invokes,
  each through the interpreter); also the bare kernel through ctypes. Configurations: the
  ``tfcompress.pq.quantize`` default for dense layers (d = 4, k = 2048, the paper's FC
  setting) and d = 8 / 4 with k = 256. ``--kernel avx2`` forces the PQ kernel variant
  (``$TFCOMPRESS_KERNEL``), ``--name`` names the result files (``pq_<name>``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
# (d, k) of the dense benchmark; the first is tfcompress.pq.quantize's default for dense layers.
DENSE_DEFAULT = (4, 2048)
DENSE_CONFIGS = (DENSE_DEFAULT, (8, 256), (4, 256))


def _write(part: str, data: dict, markdown: str) -> None:
    from tfcompress.fileio import write_text_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / f"pq_{part}.json", json.dumps(data, indent=1, default=str) + "\n", force=True)
    write_text_atomic(RESULTS / f"pq_{part}.md", markdown, force=True)
    print(markdown)


def _calibration(teacher, count: int):
    from tfcompress.data import load_split

    return load_split(None, "train", teacher.inputs[0].shape[1], limit=count).images


def bench_em(args: argparse.Namespace) -> None:
    """EM for the whole teacher without finetuning; time per layer."""
    import numpy as np

    from tfcompress.convert import load_keras_model
    from tfcompress.pq import ProductQuantizer

    teacher = load_keras_model(args.teacher)
    images = _calibration(teacher, args.images)
    runs = {}
    for label, aware in (("activation-aware", True), ("plain k-means", False)):
        quantizer = ProductQuantizer(
            teacher, images, activation_aware=aware, layer_steps=0, global_steps=0, verbose=0, gram_samples=128
        )
        start = time.perf_counter()
        quantizer.run()
        total = time.perf_counter() - start
        runs[label] = {"total_seconds": total, "records": [r.__dict__ for r in quantizer.records]}
    aware = runs["activation-aware"]["records"]
    plain = runs["plain k-means"]["records"]
    lines = [
        f"# PQ: EM for the whole teacher ({args.teacher}), no finetuning",
        "",
        f"Command: `nice -n 5 .venv/bin/python benchmarks/pq.py em --teacher {args.teacher}`; "
        f"{len(images)} calibration images (G from 128), k=256 (capped at n/4), 30 EM iterations max, "
        "faiss nearest-centroid search, 2 CPU cores shared with other jobs (wall seconds; CPU seconds summed "
        "over threads).",
        "",
        "| layer | kernel | d | k | subvectors | EM iters | EM s (aware) | EM CPU s (aware) | input capture s "
        "| EM s (plain) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a, p in zip(aware, plain, strict=True):
        lines.append(
            f"| {a['name']} | {'x'.join(map(str, a['kernel_shape']))} | {a['block_size']} | {a['n_centroids']} | "
            f"{a['n_subvectors']:,} | {a['em_iterations']} | {a['em_seconds']:.3f} | {a['em_cpu_seconds']:.3f} | "
            f"{a['capture_seconds']:.2f} | "
            f"{p['em_seconds']:.3f} |"
        )
    em_aware = float(np.sum([a["em_seconds"] for a in aware]))
    capture = float(np.sum([a["capture_seconds"] for a in aware]))
    em_plain = float(np.sum([p["em_seconds"] for p in plain]))
    em_cpu = float(np.sum([a["em_cpu_seconds"] for a in aware]))
    lines += [
        f"| **total** | | | | | | **{em_aware:.2f}** | **{em_cpu:.2f}** | **{capture:.2f}** | **{em_plain:.2f}** |",
        "",
        f"Whole activation-aware run (model copies, input capture, EM, layer swaps): "
        f"{runs['activation-aware']['total_seconds']:.1f} s; plain: {runs['plain k-means']['total_seconds']:.1f} s.",
    ]
    _write("em", {"teacher": args.teacher, "images": len(images), **runs}, "\n".join(lines) + "\n")


def bench_curve(args: argparse.Namespace) -> None:
    """Top-1 against .tflite bytes for small / large blocks and two k, EM + short global finetune."""
    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.data import load_split
    from tfcompress.evaluate import TFLiteClassifier
    from tfcompress.pq import quantize, size_report

    teacher = load_keras_model(args.teacher)
    images = _calibration(teacher, args.images)
    test = load_split(None, "test", teacher.inputs[0].shape[1])

    def top1(content: bytes) -> float:
        classifier = TFLiteClassifier(model_content=content, threads=2)
        return float((classifier.predict(test.images).argmax(1) == test.labels).mean())

    float_bytes = to_tflite(teacher)
    points = [{"model": "float", "blocks": "-", "k": "-", "bytes": len(float_bytes), "top1": top1(float_bytes)}]
    for blocks in args.blocks:
        for k in args.centroids:
            student = quantize(
                teacher, images, block_sizes=blocks, n_centroids=k, layer_steps=0,
                global_steps=args.global_steps, global_learning_rate=5e-5, temperature=2.0, augment=True, verbose=0,
            )  # fmt: skip
            content = to_tflite(student)
            point = {
                "model": f"pq {blocks} k={k}",
                "blocks": blocks,
                "k": k,
                "bytes": len(content),
                "paper_bytes": size_report(student).compressed_bytes,
                "top1": top1(content),
            }
            points.append(point)
            print(point, flush=True)
    lines = [
        f"# PQ: accuracy against size ({args.teacher})",
        "",
        f"Command: `nice -n 5 .venv/bin/python benchmarks/pq.py curve --teacher {args.teacher} --global-steps "
        f"{args.global_steps} --centroids {' '.join(map(str, args.centroids))} --blocks {' '.join(args.blocks)}`. EM + "
        f"{args.global_steps} global finetune steps (no per-layer finetune), {len(images)} unlabelled train "
        f"images; top-1 on {len(test)} test images through the runtime.",
        "",
        "| model | .tflite bytes | paper's bytes | compression | top-1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in points:
        paper = f"{p['paper_bytes']:,.0f}" if "paper_bytes" in p else "-"
        lines.append(
            f"| {p['model']} | {p['bytes']:,} | {paper} | {points[0]['bytes'] / p['bytes']:.1f}x | "
            f"{100 * p['top1']:.2f}% |"
        )
    part = f"curve_gs{args.global_steps}"
    _write(part, {"teacher": args.teacher, "points": points}, "\n".join(lines) + "\n")


def _time_pair(contents: list[bytes], threads: int, features: int, runs: int) -> list[float]:
    """Median seconds per invoke of each model, invokes interleaved so that both see the same load."""
    import numpy as np

    from tfcompress.runtime import Interpreter

    x = np.random.default_rng(0).standard_normal((1, features)).astype(np.float32)
    interpreters = []
    for content in contents:
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        for _ in range(10):
            interpreter.invoke()
        interpreters.append(interpreter)
    times: list[list[float]] = [[] for _ in contents]
    for _ in range(runs):
        for interpreter, record in zip(interpreters, times, strict=True):
            start = time.perf_counter()
            interpreter.invoke()
            record.append(time.perf_counter() - start)
    return [float(np.median(record)) for record in times]


def bench_dense(args: argparse.Namespace) -> None:
    """TfcPQDense against XNNPACK FULLY_CONNECTED at batch 1."""
    import keras
    import numpy as np

    from tfcompress.convert import to_tflite
    from tfcompress.pq import PQDense
    from tfcompress.pq.lowering import lookup_table_pays
    from tfcompress.pq.native import dense_variants, pq_dense

    rng = np.random.default_rng(0)
    rows = []
    for size in (4096, 1024):
        inputs = keras.Input((size,))
        float_model = keras.Model(inputs, keras.layers.Dense(size)(inputs))
        float_content = to_tflite(float_model)
        for d, k in DENSE_CONFIGS:
            layer = PQDense(size, block_size=d, n_centroids=k)
            pq_model = keras.Model(inputs, layer(inputs))
            codes = rng.integers(0, k, layer.codes.shape).astype(np.int32)
            codebook = rng.standard_normal((k, d)).astype(np.float16).astype(np.float32)
            layer.codes.assign(codes)
            layer.codebook.assign(codebook)
            pq_content = to_tflite(pq_model)
            for threads in (1, 2):
                float_s, pq_s = _time_pair([float_content, pq_content], threads, size, args.runs)
                x = rng.standard_normal((1, size)).astype(np.float32)
                best = args.kernel or dense_variants()[0]
                _, kernel_s = pq_dense(x, codes, codebook, None, best, threads=threads, repeats=args.runs)
                row = {
                    "size": size, "d": d, "k": k, "threads": threads, "default": (d, k) == DENSE_DEFAULT,
                    "route": "lookup table" if lookup_table_pays(size, size, d, k) else "decoded",
                    "float_tflite_bytes": len(float_content), "pq_tflite_bytes": len(pq_content),
                    "xnnpack_fc_ms": 1e3 * float_s, "pq_op_ms": 1e3 * pq_s, "pq_kernel_ms": 1e3 * kernel_s,
                    "kernel": best, "speedup": float_s / pq_s,
                }  # fmt: skip
                rows.append(row)
                print(row, flush=True)
    from benchmarks.binary_conv import _cpu_name

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    forced = f" --kernel {args.kernel}" if args.kernel else ""
    lines = [
        "# PQ dense op against XNNPACK float FC, batch 1",
        "",
        f"Command: `nice -n 5 .venv/bin/python benchmarks/pq.py dense{forced}`. "
        f"CPU: {_cpu_name()} ({os.cpu_count()} cores, shared with other jobs; load average at the end {load}); "
        f"PQ kernel variant `{args.kernel or dense_variants()[0]}`. Median of "
        f"{args.runs} invokes after 10 warm-up runs, float and PQ invokes interleaved (same load), each model in "
        "its own ai-edge-litert interpreter "
        "(float: builtin FULLY_CONNECTED under the default XNNPACK delegate; PQ file: as `to_tflite` lowers it, "
        "`lookup table` = `TfcPQDense` through the tfcompress delegate, `decoded` = `TfcPQDecode` into a 1x1 "
        "CONV_2D under XNNPACK, where `tfcompress.pq.lowering.lookup_table_pays` says the table does not pay; "
        "bare kernel: `TfcPQDense`'s kernel through ctypes, whatever the route). **default**: the "
        "`tfcompress.pq.quantize` default for dense layers.",
        "",
        "| layer | d | k | threads | .tflite float | .tflite PQ | route | XNNPACK FC (ms) | PQ file (ms) "
        "| bare lookup-table kernel (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        k = f"**{r['k']}** (default)" if r["default"] else str(r["k"])
        lines.append(
            f"| {r['size']}x{r['size']} | {r['d']} | {k} | {r['threads']} | {r['float_tflite_bytes']:,} | "
            f"{r['pq_tflite_bytes']:,} | {r['route']} | {r['xnnpack_fc_ms']:.3f} | {r['pq_op_ms']:.3f} | "
            f"{r['pq_kernel_ms']:.3f} | "
            f"{r['speedup']:.1f}x |"
        )
    _write(args.name, {"rows": rows}, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["em", "curve", "dense"])
    parser.add_argument("--teacher", default="models/flowers_float.keras")
    parser.add_argument("--images", type=int, default=512, help="unlabelled train images")
    parser.add_argument("--global-steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--centroids", type=int, nargs="+", default=[256, 64], help="k values of the curve")
    parser.add_argument("--blocks", nargs="+", default=["small", "large"], help="block size presets of the curve")
    parser.add_argument("--kernel", help="dense: force the PQ kernel variant (avx512, avx2, scalar)")
    parser.add_argument("--name", default="dense", help="dense: result files benchmarks/results/pq_<name>.*")
    args = parser.parse_args()
    if args.kernel:
        os.environ["TFCOMPRESS_KERNEL"] = args.kernel
    with tempfile.TemporaryDirectory():
        {"em": bench_em, "curve": bench_curve, "dense": bench_dense}[args.part](args)


if __name__ == "__main__":
    main()
