"""Low-rank factorization figures on the flowers ResNet-18 (models/flowers_float.keras).

    nice -n 5 .venv/bin/python benchmarks/lowrank.py [--parts shipped,methods,latency]

Writes ``benchmarks/results/lowrank.json`` and ``lowrank.md`` (overwritten; parts not run
keep their previous entries).

- ``shipped``: float vs ``models/flowers_lowrank``: top-1 on test.txt through the runtime,
  bytes, parameters, MACs, and batch-1 TFLite latency at 1 and 2 threads, as the median of
  ``--repeats`` medians of ``--runs`` invokes, the two models measured alternately.
- ``methods``: for each method (SVD, spatial SVD, Tucker-2, CP) every 3x3 conv but the stem
  is factored at the largest rank keeping at most half of its MACs; reported: the relative
  error ``||y_hat - y|| / ||y||`` of each factored layer's output on 32 validation images
  (the layer's true input fed to its replacement), the model's MACs and top-1 (val, no
  finetune).
- ``latency``: Tucker-2 at uniform rank fractions (0.375, 0.5, 0.625 of every 3x3 conv's
  channels, stem excluded) against float: MAC ratio and TFLite latency at 1 and 2 threads
  (alternating repeated medians). Latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TEACHER = ROOT / "models" / "flowers_float.keras"
SHIPPED = ROOT / "models" / "flowers_lowrank"
WORK = ROOT / "models" / ".work" / "lowrank"
METHODS = ("svd", "spatial_svd", "tucker2", "cp")
CURVE_TARGETS = (0.8, 0.65, 0.5, 0.4, 0.3)


def _interpreter_runner(path: Path, threads: int):
    from tfcompress.evaluate import TFLiteClassifier

    classifier = TFLiteClassifier(path, threads)
    prepared = classifier.prepare(np.zeros(classifier.input["shape"][1:], np.float32))
    return lambda: classifier.run(prepared)


def _median_ms(run, runs: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def alternating_latency(paths: dict[str, Path], threads: int, repeats: int, runs: int) -> dict[str, dict]:
    """Median (and spread) of ``repeats`` medians per model, models measured in turn."""
    runners = {name: _interpreter_runner(path, threads) for name, path in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in runners.items():
            samples[name].append(_median_ms(run, runs))
    return {
        name: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v), "repeats": v}
        for name, v in samples.items()
    }


def part_shipped(teacher, args) -> dict:
    import keras

    from tfcompress.convert import convert
    from tfcompress.evaluate import evaluate
    from tfcompress.lowrank import model_macs

    shipped = keras.models.load_model(args.shipped.with_suffix(".keras"))
    float_tflite = args.work / "flowers_float.tflite"
    if not float_tflite.is_file():
        convert(teacher, float_tflite)
    paths = {"flowers_float": float_tflite, "flowers_lowrank": args.shipped.with_suffix(".tflite")}
    out = {"models": {}}
    for name, path in paths.items():
        result = evaluate(path, split="test", threads=1, runs=5)
        model = teacher if name == "flowers_float" else shipped
        out["models"][name] = {
            "top1_test": result.accuracy,
            "images": result.images,
            "bytes": result.size_bytes,
            "params": model.count_params(),
            "macs": model_macs(model),
        }
    for threads in (1, 2):
        latency = alternating_latency(paths, threads, args.repeats, args.runs)
        for name, value in latency.items():
            out["models"][name][f"latency_{threads}t"] = value
        out[f"speedup_{threads}t"] = latency["flowers_float"]["median_ms"] / latency["flowers_lowrank"]["median_ms"]
    out["top1_loss_points"] = 100 * (
        out["models"]["flowers_float"]["top1_test"] - out["models"]["flowers_lowrank"]["top1_test"]
    )
    return out


def _half_mac_ranks(model, method: str) -> dict:
    import keras

    from tfcompress.lowrank.methods import candidate_ranks, describe, factorized_cost, original_cost

    fractions = np.linspace(0.02, 1.0, 50)
    ranks = {}
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D or layer.kernel_size != (3, 3) or layer.name == "stem_conv":
            continue
        info = describe(layer)
        budget = 0.5 * original_cost(info, layer)[0]
        fitting = [
            r
            for r in candidate_ranks(info, layer, method, fractions)
            if factorized_cost(info, layer, method, r)[0] <= budget
        ]
        if fitting:
            ranks[layer.name] = fitting[-1]
    return ranks


def part_methods(teacher, args) -> dict:
    import keras

    from tfcompress.data import load_split
    from tfcompress.lowrank import apply_plan, make_plan, model_macs, replaced_layer_names, top1_evaluator
    from tfcompress.lowrank.latency import chain_model

    size = int(teacher.inputs[0].shape[1])
    images = load_split(None, "val", size, limit=32).images.astype(np.float32)
    evaluate = top1_evaluator(None, size, None)
    out = {"baseline_top1_val": evaluate(teacher), "baseline_macs": model_macs(teacher), "methods": {}}
    for method in METHODS:
        start = time.perf_counter()
        plan = make_plan(teacher, method, rank=_half_mac_ranks(teacher, method))
        factored = apply_plan(teacher, plan)
        fit_seconds = time.perf_counter() - start
        chains = replaced_layer_names(plan, teacher)
        names = list(chains)
        probe = keras.Model(
            teacher.inputs,
            [teacher.get_layer(n).input for n in names] + [teacher.get_layer(n).output for n in names],
        )
        values = [np.asarray(v) for v in probe(images, training=False)]
        errors = {}
        for i, name in enumerate(names):
            layer_in, layer_out = values[i], values[len(names) + i]
            chain = chain_model([factored.get_layer(n) for n in chains[name]], (None, *layer_in.shape[1:]))
            approx = np.asarray(chain(layer_in))
            errors[name] = float(np.linalg.norm(approx - layer_out) / np.linalg.norm(layer_out))
        out["methods"][method] = {
            "ranks": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.ranks.items()},
            "layer_relative_error": errors,
            "mean_relative_error": float(np.mean(list(errors.values()))),
            "max_relative_error": float(np.max(list(errors.values()))),
            "macs_ratio": model_macs(factored) / out["baseline_macs"],
            "top1_val_no_finetune": evaluate(factored),
            "fit_seconds": fit_seconds,
        }
        print(
            method,
            out["methods"][method]["mean_relative_error"],
            out["methods"][method]["top1_val_no_finetune"],
            flush=True,
        )
    return out


def part_latency(teacher, args) -> dict:
    """Latency of Tucker-2 plans at uniform rank fractions of every 3x3 conv but the stem.

    Latency does not depend on the weights, so these need no search or finetune: they show
    which MAC ratio reaches the 1.5x latency goal.
    """
    import keras

    from tfcompress.convert import convert
    from tfcompress.lowrank import apply_plan, make_plan, model_macs
    from tfcompress.lowrank.methods import candidate_ranks, describe

    args.work.mkdir(parents=True, exist_ok=True)
    float_tflite = args.work / "flowers_float.tflite"
    if not float_tflite.is_file():
        convert(teacher, float_tflite)
    paths = {"float": float_tflite}
    ratios = {"float": 1.0}
    for fraction in args.fractions:
        ranks = {}
        for layer in teacher.layers:
            if type(layer) is keras.layers.Conv2D and layer.kernel_size == (3, 3) and layer.name != "stem_conv":
                found = candidate_ranks(describe(layer), layer, "tucker2", [fraction], 8)
                if found:
                    ranks[layer.name] = found[0]
        factored = apply_plan(teacher, make_plan(teacher, "tucker2", rank=ranks))
        name = f"tucker2_f{fraction:g}"
        paths[name] = args.work / f"latency_{name}.tflite"
        convert(factored, paths[name], force=True)
        ratios[name] = model_macs(factored) / model_macs(teacher)
    out = {"macs_ratio": ratios}
    for threads in (1, 2):
        latency = alternating_latency(paths, threads, args.repeats, args.runs)
        out[f"latency_{threads}t"] = latency
        out[f"speedup_{threads}t"] = {n: latency["float"]["median_ms"] / v["median_ms"] for n, v in latency.items()}
    return out


def markdown(results: dict) -> str:
    size = results.get("image_size", "?")
    lines = [f"# Low-rank factorization on the flowers ResNet-18 (width 32, {size} px)", ""]
    shipped = results.get("shipped")
    if shipped:
        lines += [
            "## Shipped model vs float (test.txt through the runtime; latency median of repeated medians, batch 1)",
            "",
            "| model | top-1 | bytes | params | MACs | latency 1 thread (ms) | latency 2 threads (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in shipped["models"].items():
            lines.append(
                f"| {name} | {100 * m['top1_test']:.2f}% | {m['bytes']:,} | {m['params']:,} | {m['macs']:,} "
                f"| {m['latency_1t']['median_ms']:.2f} | {m['latency_2t']['median_ms']:.2f} |"
            )
        lines += [
            "",
            f"Speed-up {shipped['speedup_1t']:.2f}x at 1 thread, {shipped['speedup_2t']:.2f}x at 2 threads; "
            f"top-1 loss {shipped['top1_loss_points']:.2f} points.",
            "",
        ]
    methods = results.get("methods")
    if methods:
        lines += [
            "## Methods at half the MACs of every 3x3 conv (stem excluded), no finetune",
            "",
            f"Float top-1 (val): {100 * methods['baseline_top1_val']:.2f}%.",
            "",
            "| method | mean layer-output rel. error | max | MACs ratio | top-1 val, no finetune | fit (s) |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in methods["methods"].items():
            lines.append(
                f"| {name} | {m['mean_relative_error']:.3f} | {m['max_relative_error']:.3f} | {m['macs_ratio']:.3f} "
                f"| {100 * m['top1_val_no_finetune']:.2f}% | {m['fit_seconds']:.1f} |"
            )
        lines.append("")
    probe = results.get("latency")
    if probe:
        lines += [
            "## TFLite latency of Tucker-2 at uniform rank fractions (weights do not matter; alternating runs)",
            "",
            "| model | MACs ratio | latency 1 thread (ms) | speed-up 1t | latency 2 threads (ms) | speed-up 2t |",
            "|---|---|---|---|---|---|",
        ]
        for name, ratio in probe["macs_ratio"].items():
            lines.append(
                f"| {name} | {ratio:.3f} | {probe['latency_1t'][name]['median_ms']:.2f} "
                f"| {probe['speedup_1t'][name]:.2f}x | {probe['latency_2t'][name]['median_ms']:.2f} "
                f"| {probe['speedup_2t'][name]:.2f}x |"
            )
        lines.append("")
    parts = ",".join(part for part in ("shipped", "methods", "latency") if part in results)
    lines.append(f"Reproduce: `nice -n 5 .venv/bin/python benchmarks/lowrank.py --parts {parts}`.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="shipped,methods")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--teacher", type=Path, default=TEACHER)
    parser.add_argument("--shipped", type=Path, default=SHIPPED, help="shipped model, without suffix")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (float and probe .tflite files)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--fractions", type=lambda v: [float(x) for x in v.split(",")], default=[0.375, 0.5, 0.625])
    args = parser.parse_args()

    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import write_text_atomic

    teacher = load_keras_model(args.teacher)
    json_path = args.results / "lowrank.json"
    parts = {"shipped": part_shipped, "methods": part_methods, "latency": part_latency}
    results: dict = {}
    for part in args.parts.split(","):
        value = parts[part](teacher, args)
        # Re-read before writing: another part may have been written meanwhile by another run.
        results = json.loads(json_path.read_text()) if json_path.is_file() else {}
        results[part] = value
        results["image_size"] = int(teacher.inputs[0].shape[1])
        write_text_atomic(json_path, json.dumps(results, indent=1) + "\n", force=True)
        write_text_atomic(args.results / "lowrank.md", markdown(results), force=True)
    print(markdown(results))


if __name__ == "__main__":
    main()
