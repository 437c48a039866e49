"""Make models/flowers_dc.{keras,tflite,md}: Deep Compression of the flowers ResNet inside the .tflite.

    nice -n 5 .venv/bin/python scripts/make_flowers_dc.py [--sparsity 0.9] [--epochs 1] [--force]

Steps (Han et al. 2016): start from a compressed model (``--start``: the 80%-pruned model of
`--recipe pruned` of `tfcompress compress`, or the Network-Slimming model of make_flowers_slim.py, whose removed
channels cost no bits at all), prune (further) to ``--sparsity`` while finetuning (distilled
from ``--teacher``; ``--allocation global`` puts one magnitude threshold over all layers),
then per-layer k-means weight sharing (the most of ``--conv-bits`` 8, 6, 5, 4 bits for
convolutions that reaches ``--target-ratio`` x smaller than the float file; ``--dense-bits`` 5
for the classifier), trained quantization (``--tq-epochs`` of finetuning the shared centroids,
distilled from the teacher: :mod:`tfcompress.pruning.trained_quantization`) and Huffman
coding of the shared-weight indices and relative positions in the ``.tflite``, decoded once
by our ``TfcSparseDecode`` op when the delegate is applied. Top-1 on ``test.txt``, bytes and
latency at 1 and 2 threads through the runtime with ``libtfcompress_ops.so`` loaded.
Resumable: the pruned and the centroid-finetuned models are saved under ``--work``.
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
    parser.add_argument("--teacher", default=str(ROOT / "models/flowers_float.keras"))
    parser.add_argument("--start", default=str(ROOT / "models/flowers_pruned.keras"), help="the pruned model")
    parser.add_argument("--name", default="flowers_dc")
    parser.add_argument("--out-dir", default=str(ROOT / "models"))
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument(
        "--allocation",
        choices=["layer", "global"],
        default="layer",
        help="layer: every kernel at --sparsity; global: one magnitude threshold over all kernels",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="label-loss weight; 1 - alpha weighs the soft targets")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--conv-bits", type=int, nargs="+", default=[8, 6, 5, 4])
    parser.add_argument("--tq-epochs", type=int, default=2, help="epochs finetuning the shared centroids")
    parser.add_argument("--tq-learning-rate", type=float, default=0.002)
    parser.add_argument("--dense-bits", type=int, default=5)
    parser.add_argument("--target-ratio", type=float, default=30.0)
    parser.add_argument("--limit", type=int, help="images per split (dry runs)")
    parser.add_argument("--work", default=str(ROOT / "models/.work/pruning/dc"))
    parser.add_argument("--force", action="store_true")
    return parser.parse_args()


def card(args, image_size, bits, counts, float_result, result, rows, seconds) -> str:
    total = rows[-1]
    finetune = f"{args.epochs} more finetuning epoch(s)" if args.epochs else "one shot, no finetune"
    trained = (
        f"; then trained quantization: {args.tq_epochs} epoch(s) finetuning the shared centroids, distilled"
        if args.tq_epochs
        else ""
    )
    ratio = float_result["bytes"] / result["bytes"]
    allocation = "one global magnitude threshold" if args.allocation == "global" else "every layer alike"
    start = Path(args.start).stem
    pruning = (
        f"magnitude pruning to {args.sparsity:.0%} ({allocation}) of `{start}` ({finetune})"
        if args.sparsity > 0
        else f"no further pruning of `{start}`"
    )
    kernels = rows[:-1]
    dense_mode = sum(1 for row in kernels if row["gap_bits"] == 0)
    return f"""# {args.name}

Deep Compression (Han et al. 2016) of the flowers ResNet-18 (width 32, {image_size} px, RGB 0..255 in,
logits out) stored in the file itself: {pruning}, per-layer k-means weight sharing with
{bits} bits for convolutions and {args.dense_bits} for the classifier{trained}, Huffman coding of the
shared-weight indices and of the relative positions of the nonzeros (gap width chosen per kernel,
filler zeros on overflow) or, where that is smaller, dense mode (no position stream, a zero coded
as index 0): {dense_mode} of {len(kernels)} kernels are in dense mode. Our `TfcSparseDecode` op
rebuilds each kernel once, when the op library's delegate is applied, into a read-only constant;
XNNPACK then runs the convs as in the float model (needs `libtfcompress_ops.so`, loaded by `tfcompress.runtime`).

Made by: `{invoked_command("scripts/make_flowers_dc.py")}`
after `scripts/make_{start}.py`
(the last invocation took {seconds / 60:.1f} min on 2 shared CPU cores; stages
found under its work folder are reused, not re-run).

| | float (`{Path(float_result["file"]).name}`) | Deep Compression (`{args.name}.tflite`) |
|---|---|---|
| top-1 on flowers5 test.txt (runtime) | {100 * float_result["top1"]:.2f}% | {100 * result["top1"]:.2f}% |
| .tflite bytes | {float_result["bytes"]:,} | {result["bytes"]:,} ({ratio:.1f}x smaller) |
| latency 1 thread (median ms) | {float_result["latency_ms_1t"]:.2f} | {result["latency_ms_1t"]:.2f} |
| latency 2 threads (median ms) | {float_result["latency_ms_2t"]:.2f} | {result["latency_ms_2t"]:.2f} |
| nonzero parameters | {counts["before"]["nonzero_params"]:,} | {counts["after"]["nonzero_params"]:,} |

Compressed kernels: {total["dense_bytes"]:,} B dense float32 -> {total["compressed_bytes"]:,} B
({total["ratio"]:.1f}x; Huffman streams, code tables and codebooks). The rest of the file is
BatchNorm / bias parameters and the graph.
"""


def main() -> None:
    args = parse_args()
    from flowers_float_file import float_tflite

    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.fileio import atomic_output, cached_model, output_paths, write_bytes_atomic, write_text_atomic
    from tfcompress.pruning import deep_compress
    from tfcompress.pruning.deep_compression import size_report
    from tfcompress.pruning.finetune import FinetuneConfig
    from tfcompress.pruning.layers import shared_layers
    from tfcompress.pruning.lowering import encoded_layer
    from tfcompress.pruning.measure import cached_measure, measure_tflite, model_counts
    from tfcompress.pruning.pipeline import prune_and_finetune
    from tfcompress.pruning.trained_quantization import finetune_centroids

    out = Path(args.out_dir)
    paths = output_paths(out, args.name, (".keras", ".tflite", ".md"), args.force)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    teacher = load_keras_model(args.teacher)
    image_size = int(teacher.inputs[0].shape[1])
    stem = f"{args.allocation}_s{args.sparsity}_e{args.epochs}_a{args.alpha:g}"
    pruned = cached_model(
        work / f"pruned_{stem}.keras",
        lambda: prune_and_finetune(
            load_keras_model(args.start),
            None,
            args.sparsity,
            config=FinetuneConfig(epochs=args.epochs, learning_rate=args.learning_rate, alpha=args.alpha),
            teacher=teacher,
            backup_dir=work / "backup",
            limit=args.limit,
            verbose=2,
            allocation=args.allocation,
        ),
    )
    float_path = float_tflite(teacher, work)
    float_bytes = float_path.stat().st_size
    for bits in args.conv_bits:
        compressed = deep_compress(pruned, conv_bits=bits, dense_bits=args.dense_bits)
        data = to_tflite(compressed)
        print(f"conv {bits} bits: {len(data):,} B, {float_bytes / len(data):.1f}x smaller", flush=True)
        if float_bytes / len(data) >= args.target_ratio:
            break
    if args.tq_epochs > 0:
        compressed = cached_model(
            work / f"shared_{stem}_b{bits}_tq{args.tq_epochs}.keras",
            lambda: finetune_centroids(
                compressed,
                None,
                FinetuneConfig(epochs=args.tq_epochs, learning_rate=args.tq_learning_rate, alpha=args.alpha),
                teacher=teacher,
                backup_dir=work / "tq_backup",
                limit=args.limit,
                verbose=2,
            ),
        )
        data = to_tflite(compressed)
    with atomic_output(paths[".keras"], args.force) as tmp:
        compressed.save(tmp)
    write_bytes_atomic(paths[".tflite"], data, args.force)
    rows = size_report({layer.name: encoded_layer(layer) for layer in shared_layers(compressed)})
    float_result = cached_measure(float_path, ROOT / "models/.work/pruning/float_result.json")
    result = measure_tflite(paths[".tflite"])
    counts = {"before": model_counts(teacher), "after": model_counts(compressed)}
    summary = {"float": float_result, "dc": result, "conv_bits": bits, "counts": counts, "layers": rows}
    write_text_atomic(work / "results.json", json.dumps(summary, indent=2), force=True)
    write_text_atomic(
        paths[".md"],
        card(args, image_size, bits, counts, float_result, result, rows, time.time() - start),
        args.force,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=2))


if __name__ == "__main__":
    main()
