"""Make models/flowers_pq.{keras,tflite,md}: the flowers teacher product-quantized ("And the Bit Goes Down").

    nice -n 5 .venv/bin/python scripts/make_flowers_pq.py [--teacher models/flowers_float.keras] [--force]

Steps: bottom-up activation-aware PQ of every conv/dense layer but the first (3x3: d=9,
1x1 and dense: d=4, k=256 capped at n_subvectors/4), each layer's inputs re-captured from
the partly quantized student; optional per-layer codebook finetune (``--layer-steps``, 0 by
default: on 2 shared cores its per-layer set-up cost dominated) and a global finetune of
all codebooks with BatchNorm statistics updated, by distillation from the teacher on the
flowers5 train split (no labels used); then conversion to ``.tflite`` (``TfcPQDecode`` / ``TfcPQDense`` custom ops) and
evaluation of both ``.tflite`` files on ``test.txt`` through the runtime. Resumable: the
student is saved after each layer under ``--work``; rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from script_command import invoked_command  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="models/flowers_float.keras")
    parser.add_argument("--name", default="flowers_pq", help="writes OUT_DIR/NAME.keras, .tflite and .md")
    parser.add_argument("--out-dir", default=str(ROOT / "models"))
    parser.add_argument("--block-size", default="small")
    parser.add_argument("--centroids", type=int, default=256)
    parser.add_argument("--calibration-images", type=int, default=None, help="train images (default: all)")
    parser.add_argument("--layer-steps", type=int, default=0)
    parser.add_argument("--global-steps", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--global-learning-rate", type=float, default=2e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--work", default="models/.work/pq_flowers", help="checkpoints (resume)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--card-only", action="store_true", help="rewrite the card from the last run's saved results")
    return parser.parse_args()


def evaluate_both(float_tflite: Path, pq_tflite: Path) -> dict:
    from tfcompress.evaluate import evaluate

    results = {}
    for label, path in (("float", float_tflite), ("pq", pq_tflite)):
        for threads in (1, 2):
            result = evaluate(path, None, "test", threads=threads, runs=50)
            results[f"{label}_{threads}"] = result.__dict__
            print(f"{label} {threads} thread(s): top-1 {100 * result.accuracy:.2f}% {result.size_bytes:,} B "
                  f"{result.latency_ms_median:.2f} ms", flush=True)  # fmt: skip
    return results


def card(args: argparse.Namespace, quantizer, report, results: dict, seconds: float) -> str:
    float1, pq1, pq2, float2 = results["float_1"], results["pq_1"], results["pq_2"], results["float_2"]
    em_total = sum(r.em_seconds for r in quantizer.records)
    em_cpu = sum(r.em_cpu_seconds for r in quantizer.records)
    lines = [
        f"# {args.name}: product-quantized flowers ResNet-18",
        "",
        f"Made by `{invoked_command('scripts/make_flowers_pq.py')}` "
        f"(block size {args.block_size}, k={args.centroids}, layer steps {args.layer_steps}, global steps "
        f"{args.global_steps}, lr {args.learning_rate}/{args.global_learning_rate}, T={args.temperature}); "
        f"the last invocation took {seconds / 60:.1f} min on 2 shared CPU cores.",
        "",
        'Method: Stock et al. 2020, "And the Bit Goes Down": bottom-up activation-aware EM per layer (inputs '
        "re-captured from the partly quantized student), "
        + ("per-layer codebook finetune by distillation, " if args.layer_steps else "")
        + "global finetune of all codebooks by distillation (KL to the float teacher at T=2, unlabelled augmented "
        "train images) with BatchNorm statistics updated. First conv, BN and biases stay float.",
        "",
        "| model | top-1 (test.txt, runtime) | bytes (.tflite) | latency 1 thread (ms) | latency 2 threads (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| float teacher | {100 * float1['accuracy']:.2f}% | {float1['size_bytes']:,} | "
        f"{float1['latency_ms_median']:.2f} | {float2['latency_ms_median']:.2f} |",
        f"| {args.name} | {100 * pq1['accuracy']:.2f}% | {pq1['size_bytes']:,} | "
        f"{pq1['latency_ms_median']:.2f} | {pq2['latency_ms_median']:.2f} |",
        "",
        f"Compression of the .tflite: {float1['size_bytes'] / pq1['size_bytes']:.1f}x; top-1 change "
        f"{100 * (pq1['accuracy'] - float1['accuracy']):+.2f} points ({pq1['images']} test images).",
        f"Paper's size formula (`tfcompress.pq.size_report`): {report.compressed_bytes:,.0f} bytes "
        f"({report.compression:.1f}x vs {report.float_bytes:,} fp32 bytes).",
        "",
        f"EM time (no finetuning), all {len(quantizer.records)} layers: {em_total:.2f} s wall, "
        f"{em_cpu:.2f} s CPU (all threads); wall times were taken with the 2 cores shared by many jobs "
        "(load average about 19).",
        "",
        "| layer | kernel | d | k | EM s (wall) | EM s (CPU) | input capture s | per-layer finetune s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    tuned = [r.name for r in quantizer.records if r.finetune_seconds > 1.0]
    if tuned and not args.layer_steps:
        lines[-4:-4] = [
            f"Resumed run: {', '.join(tuned)} got a per-layer finetune in an earlier, interrupted invocation "
            "(with --layer-steps 40); the checkpoint kept it.",
            "",
        ]
    for r in quantizer.records:
        lines.append(
            f"| {r.name} | {'x'.join(map(str, r.kernel_shape))} | {r.block_size} | {r.n_centroids} | "
            f"{r.em_seconds:.3f} | {r.em_cpu_seconds:.3f} | {r.capture_seconds:.2f} | {r.finetune_seconds:.1f} |"
        )
    lines += ["", "## Size by layer (paper's formula)", "", report.markdown()]
    return "\n".join(lines) + "\n"


def rewrite_card(args: argparse.Namespace, models: Path) -> None:
    """The card again from ``--work``'s saved results and records (no quantization, no evaluation)."""
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import write_text_atomic
    from tfcompress.pq import LayerRecord, size_report

    saved = json.loads((Path(args.work) / f"{args.name}.json").read_text())
    records = [LayerRecord(**{**r, "kernel_shape": tuple(r["kernel_shape"])}) for r in saved["records"]]
    quantizer = argparse.Namespace(records=records)
    report = size_report(load_keras_model(models / f"{args.name}.keras"))
    text = card(args, quantizer, report, saved["results"], saved["seconds"])
    write_text_atomic(models / f"{args.name}.md", text, force=True)


def main() -> None:
    args = parse_args()
    import keras

    from tfcompress.convert import convert, load_keras_model
    from tfcompress.data import load_split
    from tfcompress.fileio import atomic_output, check_output_path, write_text_atomic
    from tfcompress.pq import ProductQuantizer, size_report

    models = Path(args.out_dir)
    if args.card_only:
        rewrite_card(args, models)
        return
    outputs = [models / f"{args.name}{suffix}" for suffix in (".keras", ".tflite", ".md")]
    for path in outputs:
        check_output_path(path, args.force)
    start = time.perf_counter()
    teacher = load_keras_model(args.teacher)
    images = load_split(None, "train", teacher.inputs[0].shape[1], limit=args.calibration_images).images
    keras.utils.set_random_seed(0)
    block = int(args.block_size) if args.block_size.isdigit() else args.block_size
    quantizer = ProductQuantizer(
        teacher,
        images,
        block_sizes=block,
        n_centroids=args.centroids,
        layer_steps=args.layer_steps,
        global_steps=args.global_steps,
        learning_rate=args.learning_rate,
        global_learning_rate=args.global_learning_rate,
        temperature=args.temperature,
        augment=True,
        checkpoint_dir=Path(args.work) / args.name,
    )
    finished = Path(args.work) / args.name / "final.keras"
    if finished.is_file():  # quantized and finetuned by an earlier run: only convert and evaluate
        student = load_keras_model(finished)
        quantizer._resume()
    else:
        student = quantizer.run()
        with atomic_output(finished, force=True) as tmp:
            student.save(tmp)
    with atomic_output(outputs[0], args.force) as tmp:
        student.save(tmp)
    convert(student, outputs[1], force=args.force)
    float_tflite = Path(args.work) / (Path(args.teacher).stem + ".tflite")
    if not float_tflite.is_file():
        convert(teacher, float_tflite)
    seconds = time.perf_counter() - start
    results = evaluate_both(float_tflite, outputs[1])
    report = size_report(student)
    write_text_atomic(outputs[2], card(args, quantizer, report, results, seconds), args.force)
    summary = {"results": results, "records": [r.__dict__ for r in quantizer.records], "seconds": seconds}
    write_text_atomic(Path(args.work) / f"{args.name}.json", json.dumps(summary, indent=1, default=str), True)
    print(f"wrote {', '.join(map(str, outputs))}")


if __name__ == "__main__":
    main()
