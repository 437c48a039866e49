"""Make models/flowers_pruned.{keras,tflite,md}: the flowers ResNet at 80% unstructured sparsity.

    nice -n 5 .venv/bin/python scripts/make_flowers_pruned.py [--sparsity 0.8] [--epochs 6] [--distill] [--force]

Steps: magnitude pruning of every Conv/Dense kernel on a polynomial schedule (Zhu & Gupta
2017) reaching the target at 60% of the finetune, SGD at 0.01 with cosine decay, strip;
conversion with the TFLite-native ``EXPERIMENTAL_SPARSITY`` (stock runtime, no custom op);
top-1 on ``test.txt``, bytes and latency at 1 and 2 threads through the runtime, beside the
float ``.tflite``. Resumable: the finetune keeps ``BackupAndRestore`` state under ``--work``
and the pruned model is saved there before conversion; rerun the same command to continue.
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
    parser.add_argument("--name", default="flowers_pruned")
    parser.add_argument("--out-dir", default=str(ROOT / "models"))
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--distill", action="store_true", help="soft targets from the float model")
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="label-loss weight with --distill (0: soft targets only)"
    )
    parser.add_argument(
        "--allocation",
        choices=["layer", "global"],
        default="layer",
        help="layer: every kernel at --sparsity; global: one magnitude threshold over all kernels",
    )
    parser.add_argument("--limit", type=int, help="images per split (dry runs)")
    parser.add_argument("--work", default=str(ROOT / "models/.work/pruning/pruned"))
    parser.add_argument("--force", action="store_true")
    return parser.parse_args()


def float_tflite(teacher, work: Path) -> Path:
    """The float ``.tflite`` of the teacher (``models/flowers_float.tflite`` when shipped, else converted)."""
    shipped = ROOT / "models/flowers_float.tflite"
    if shipped.is_file():
        return shipped
    path = work.parent / "flowers_float.tflite"
    if not path.is_file():
        from tfcompress.convert import to_tflite
        from tfcompress.fileio import write_bytes_atomic

        write_bytes_atomic(path, to_tflite(teacher), force=True)
    return path


def card(args, image_size, counts_before, counts_after, float_result, result, seconds) -> str:
    command = invoked_command("scripts/make_flowers_pruned.py")
    finetune = (
        f"finetuned {args.epochs} epochs (polynomial schedule, SGD 0.01 cosine"
        + (f", distilled from the float model, label weight alpha = {args.alpha:g})" if args.distill else ")")
        if args.epochs
        else "pruned in one shot, NOT finetuned (CPU was scarce when it was made; rerun with --epochs 2)"
    )
    ratio = float_result["bytes"] / result["bytes"]
    allocation = "one global threshold over all layers" if args.allocation == "global" else "per layer"
    before = f"{counts_before['params']:,} ({counts_before['nonzero_params']:,})"
    after = f"{counts_after['params']:,} ({counts_after['nonzero_params']:,})"
    return f"""# {args.name}

The flowers ResNet-18 (width 32, {image_size} px, RGB 0..255 in, logits out) with {args.sparsity:.0%} of its
Conv/Dense weights pruned by magnitude ({allocation}), {finetune},
stripped to plain Keras layers, converted with TFLite's `EXPERIMENTAL_SPARSITY` (stock runtime, no custom op).

Made by: `{command}` (the last invocation took {seconds / 60:.1f} min on 2 shared CPU cores; stages
found under its work folder are reused, not re-run).

| | float (`{Path(float_result["file"]).name}`) | pruned (`{args.name}.tflite`) |
|---|---|---|
| top-1 on flowers5 test.txt (runtime) | {100 * float_result["top1"]:.2f}% | {100 * result["top1"]:.2f}% |
| .tflite bytes | {float_result["bytes"]:,} | {result["bytes"]:,} ({ratio:.2f}x smaller) |
| .tflite bytes after gzip -9 | {float_result["gzip_bytes"]:,} | {result["gzip_bytes"]:,} |
| latency 1 thread (median ms) | {float_result["latency_ms_1t"]:.2f} | {result["latency_ms_1t"]:.2f} |
| latency 2 threads (median ms) | {float_result["latency_ms_2t"]:.2f} | {result["latency_ms_2t"]:.2f} |
| parameters (nonzero) | {before} | {after} |

Latency is batch 1 on the shared 2-core machine, 50 timed runs after 5 warm-up runs.
"""


def main() -> None:
    args = parse_args()

    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.fileio import atomic_output, cached_model, output_paths, write_bytes_atomic, write_text_atomic
    from tfcompress.pruning.finetune import FinetuneConfig
    from tfcompress.pruning.measure import cached_measure, measure_tflite, model_counts
    from tfcompress.pruning.pipeline import prune_and_finetune

    out = Path(args.out_dir)
    paths = output_paths(out, args.name, (".keras", ".tflite", ".md"), args.force)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    teacher = load_keras_model(args.teacher)
    image_size = int(teacher.inputs[0].shape[1])
    pruned = cached_model(
        work / f"pruned_{args.allocation}_s{args.sparsity}_e{args.epochs}_a{args.alpha:g}.keras",
        lambda: prune_and_finetune(
            teacher,
            None,
            args.sparsity,
            config=FinetuneConfig(epochs=args.epochs, learning_rate=args.learning_rate, alpha=args.alpha),
            teacher=teacher if args.distill else None,
            backup_dir=work / "backup",
            limit=args.limit,
            verbose=2,
            allocation=args.allocation,
        ),
    )
    with atomic_output(paths[".keras"], args.force) as tmp:
        pruned.save(tmp)
    write_bytes_atomic(paths[".tflite"], to_tflite(pruned, sparse=True), args.force)
    float_result = cached_measure(float_tflite(teacher, work), ROOT / "models/.work/pruning/float_result.json")
    result = measure_tflite(paths[".tflite"])
    counts_before, counts_after = model_counts(teacher), model_counts(pruned)
    summary = {"float": float_result, "pruned": result, "before": counts_before, "after": counts_after}
    write_text_atomic(work / "results.json", json.dumps(summary, indent=2), force=True)
    write_text_atomic(
        paths[".md"],
        card(args, image_size, counts_before, counts_after, float_result, result, time.time() - start),
        args.force,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
