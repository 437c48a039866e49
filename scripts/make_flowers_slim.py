"""Make models/flowers_slim.{keras,tflite,md}: the flowers ResNet thinned by Network Slimming.

    nice -n 5 .venv/bin/python scripts/make_flowers_slim.py [--ratio 0.5] [--penalty-epochs 3] [--epochs 5] [--force]

Steps (Liu et al. 2017): sparsity training with an L1 penalty on every BatchNorm gamma
(``--l1``, ``--penalty-epochs``), one global threshold on ``|gamma|`` removing ``--ratio``
of the BatchNorm channels (residual channels removed together), the functional model rebuilt
with fewer filters and the kept weights copied, then a finetune; plain float ``.tflite``
(no custom op). Top-1 on ``test.txt``, bytes, latency at 1 and 2 threads, parameters and MACs
before/after. Resumable: each phase keeps ``BackupAndRestore`` state under ``--work``.
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
    parser.add_argument("--name", default="flowers_slim")
    parser.add_argument("--out-dir", default=str(ROOT / "models"))
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--l1", type=float, default=1e-4)
    parser.add_argument("--penalty-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--distill", action="store_true", help="soft targets from the float model")
    parser.add_argument("--limit", type=int, help="images per split (dry runs)")
    parser.add_argument("--work", default=str(ROOT / "models/.work/pruning/slim"))
    parser.add_argument("--force", action="store_true")
    return parser.parse_args()


def card(args, image_size, before, after, float_result, result, report, seconds) -> str:
    command = invoked_command("scripts/make_flowers_slim.py")
    finetune = (
        f"finetuned {args.epochs} epochs" if args.epochs else "NOT finetuned (CPU was scarce; rerun with --epochs)"
    )
    speed1 = float_result["latency_ms_1t"] / result["latency_ms_1t"]
    speed2 = float_result["latency_ms_2t"] / result["latency_ms_2t"]
    return f"""# {args.name}

The flowers ResNet-18 (width 32, {image_size} px, RGB 0..255 in, logits out) thinned by Network Slimming
(Liu et al. 2017): {args.penalty_epochs} epochs with L1 {args.l1:g} on BatchNorm gamma
(0: the trained gammas as they are), one global
|gamma| threshold ({report.threshold:.3g}) removing {report.removed_channels} of {report.total_channels}
BatchNorm channels (residual channels together), rebuilt with fewer filters, {finetune}
{" with distillation" if args.distill else ""}. Plain float `.tflite`, no custom op.

Made by: `{command}` (the last invocation took {seconds / 60:.1f} min on 2 shared CPU cores; stages
found under its work folder are reused, not re-run).

| | float (`{Path(float_result["file"]).name}`) | slim (`{args.name}.tflite`) |
|---|---|---|
| top-1 on flowers5 test.txt (runtime) | {100 * float_result["top1"]:.2f}% | {100 * result["top1"]:.2f}% |
| .tflite bytes | {float_result["bytes"]:,} | {result["bytes"]:,} |
| latency 1 thread (median ms) | {float_result["latency_ms_1t"]:.2f} | {result["latency_ms_1t"]:.2f} ({speed1:.2f}x) |
| latency 2 threads (median ms) | {float_result["latency_ms_2t"]:.2f} | {result["latency_ms_2t"]:.2f} ({speed2:.2f}x) |
| parameters | {before["params"]:,} | {after["params"]:,} |
| MACs (batch 1) | {before["macs"]:,} | {after["macs"]:,} |

Filters per layer (before -> after): {", ".join(f"{k} {a}->{b}" for k, (a, b) in report.layer_channels.items())}.

Latency is batch 1 on the shared 2-core machine, 50 timed runs after 5 warm-up runs.
"""


def main() -> None:
    args = parse_args()
    from flowers_float_file import float_tflite

    from tfcompress.convert import load_keras_model, to_tflite
    from tfcompress.fileio import atomic_output, cached_model, output_paths, write_bytes_atomic, write_text_atomic
    from tfcompress.pruning.finetune import FinetuneConfig, finetune
    from tfcompress.pruning.measure import cached_measure, measure_tflite, model_counts
    from tfcompress.pruning.prune import copy_model
    from tfcompress.pruning.slim import add_gamma_penalty, slim

    out = Path(args.out_dir)
    paths = output_paths(out, args.name, (".keras", ".tflite", ".md"), args.force)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    teacher = load_keras_model(args.teacher)
    image_size = int(teacher.inputs[0].shape[1])
    size = int(teacher.inputs[0].shape[1])
    config = FinetuneConfig(epochs=args.epochs, learning_rate=args.learning_rate)
    distill_from = teacher if args.distill else None
    if args.penalty_epochs == 0:
        penalized = teacher
    else:
        penalty = FinetuneConfig(epochs=args.penalty_epochs, learning_rate=args.learning_rate)
        penalized = cached_model(
            work / "penalized.keras",
            lambda: finetune(
                lambda: add_gamma_penalty(teacher, args.l1),
                None,
                size,
                penalty,
                teacher=distill_from,
                backup_dir=work / "backup_penalty",
                limit=args.limit,
                verbose=2,
            ),
        )
    thin, report = slim(penalized, args.ratio, return_report=True)
    print(f"slimmed: {report}", flush=True)
    if args.epochs > 0:
        sliced = thin
        thin = cached_model(
            work / f"slim_r{args.ratio}_e{args.epochs}.keras",
            lambda: finetune(
                lambda: copy_model(sliced),
                None,
                size,
                config,
                teacher=distill_from,
                backup_dir=work / "backup_finetune",
                limit=args.limit,
                verbose=2,
            ),
        )
    with atomic_output(paths[".keras"], args.force) as tmp:
        thin.save(tmp)
    write_bytes_atomic(paths[".tflite"], to_tflite(thin), args.force)
    float_result = cached_measure(float_tflite(teacher, work), ROOT / "models/.work/pruning/float_result.json")
    result = measure_tflite(paths[".tflite"])
    before, after = model_counts(teacher), model_counts(thin)
    summary = {
        "float": float_result,
        "slim": result,
        "before": before,
        "after": after,
        "threshold": report.threshold,
        "removed_channels": report.removed_channels,
        "total_channels": report.total_channels,
        "layer_channels": report.layer_channels,
    }
    write_text_atomic(work / "results.json", json.dumps(summary, indent=2), force=True)
    write_text_atomic(
        paths[".md"],
        card(args, image_size, before, after, float_result, result, report, time.time() - start),
        args.force,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
