"""Make models/flowers_lowrank.{keras,tflite,md}: Tucker-2 factorization of the flowers ResNet-18.

Stages, each resumable (state under models/.work/lowrank/; run the same command again):

1. search: greedy per-layer Tucker-2 rank search (tfcompress.lowrank.search_ranks) for a
   MAC target, each candidate scored by its top-1 change against the float model on
   ``--eval-images`` validation images; the table is saved after every layer
   (search_table_<method>_macs_drop.json), so a rerun scores only the missing layers.
2. finetune: distilled from the float model (tfcompress.distill soft targets, T=4) for a
   few epochs, best-validation weights, resumable from models/.work/lowrank/backup.
3. ship: convert with the stock converter, measure top-1 on test.txt through the runtime,
   bytes, latency (1 and 2 threads), write the card.

Same as ``tfcompress factorize models/flowers_float.keras --method tucker2 --target-macs
RATIO --distill --epochs EPOCHS -o models/flowers_lowrank.keras`` plus the resumable
search table and the card. Usage::

    nice -n 5 python scripts/make_flowers_lowrank.py [--target-macs 0.4] [--epochs 6] [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

WORK = Path("models/.work/lowrank")
TEACHER = Path("models/flowers_float.keras")
OUT = Path("models/flowers_lowrank")
EVAL_IMAGES = 300
FRACTIONS = (0.25, 0.375, 0.5, 0.625, 0.75)  # of each layer's full rank; 1/8 only destroys accuracy


def _table_io(path: Path):
    from tfcompress.lowrank import Candidate

    def load() -> dict:
        if not path.is_file():
            return {}
        raw = json.loads(path.read_text())
        return {
            name: [Candidate(tuple(r) if isinstance(r, list) else r, s, d) for r, s, d in rows]
            for name, rows in raw.items()
        }

    def save(name: str, rows) -> None:
        from tfcompress.fileio import write_text_atomic

        raw = json.loads(path.read_text()) if path.is_file() else {}
        raw[name] = [[row.rank, row.score, row.cost_delta] for row in rows]
        write_text_atomic(path, json.dumps(raw, indent=1), force=True)

    return load, save


def search(teacher, ratio: float, method: str, work: Path = WORK, eval_images: int = EVAL_IMAGES):
    from tfcompress.lowrank import Target, search_ranks, top1_evaluator

    load, save = _table_io(work / f"search_table_{method}_macs_drop.json")
    top1 = top1_evaluator(None, int(teacher.inputs[0].shape[1]), eval_images)
    baseline = top1(teacher)

    def evaluate(model) -> float:
        # The change of top-1 against the float model on the same images: scores stay
        # comparable when a resumed run scores the remaining layers on another sample size.
        return top1(model) - baseline

    return search_ranks(
        teacher,
        method,
        Target("macs", ratio),
        evaluate,
        fractions=FRACTIONS,
        rank_multiple=8,
        known=load(),
        on_layer=save,
        verbose=1,
    )


def polish(tuned, teacher, args: argparse.Namespace, work: Path):
    """A second, longer distillation of the finetuned model: ``(path, model)``, cached in ``work``.

    Soft targets only (alpha 0, T = 4) on mixup-ed batches, SGD from 0.01 with cosine decay:
    the student is fitted to the teacher's function on inputs the labels say nothing about
    ("function matching", Beyer et al. 2022, "Knowledge distillation: A good teacher is
    patient and consistent"). Same as ``tfcompress distill --teacher models/flowers_float.keras
    --student TUNED.keras --epochs N --learning-rate 0.01 --alpha 0 --temperature 4 --mixup 0.2
    --label-smoothing 0``.
    """
    import keras

    from tfcompress.distill import DistillConfig, distill

    path = work / f"polished_{args.method}_{args.target_macs:g}_{args.polish_epochs}.keras"
    if path.is_file():
        return path, keras.models.load_model(path)
    config = DistillConfig(
        model="flowers_lowrank",
        image_size=int(tuned.inputs[0].shape[1]),
        epochs=args.polish_epochs,
        learning_rate=0.01,
        alpha=0.0,
        temperature=4.0,
        mixup=0.2,
        label_smoothing=0.0,
    )
    model = distill(
        path, teacher, None, config, student=tuned, backup_dir=work / "polish_backup", limit=args.limit, verbose=2
    )
    return path, model


def card(result, evals: dict, command: str, costs: dict, image_size: int, polish_epochs: int = 0) -> str:
    """The model card: how it was made, and what was measured through the runtime."""
    lines = [
        f"# flowers_lowrank: Tucker-2 factorized ResNet-18 (width 32, {image_size} px) for flowers5",
        "",
        "Made by (resumable; state in models/.work/lowrank/):",
        "",
        f"    {command}",
        "",
        "Method: Tucker-2 (HOSVD init) on the 3x3 convs, truncated SVD on the 1x1 convs and the classifier; "
        f"ranks from the greedy per-layer search for {result.target.ratio:g} of the MACs (each candidate scored "
        "by its top-1 change on validation images, ranks rounded up to multiples of 8), then a short finetune "
        "distilled from models/flowers_float.keras (soft targets, T = 4)"
        + (
            f", then {polish_epochs} more epochs of soft targets only on mixup-ed images (function matching)"
            if polish_epochs
            else ""
        )
        + ". Stock TFLite ops only.",
        "",
        "| model | top-1 (test, runtime) | bytes | latency 1 thread (ms) | latency 2 threads (ms) | MACs | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_threads in evals.items():
        one, two = by_threads[1], by_threads[2]
        macs, params = costs[name]
        lines.append(
            f"| {name}.tflite | {100 * one.accuracy:.2f}% | {one.size_bytes:,} | {one.latency_ms_median:.2f} "
            f"| {two.latency_ms_median:.2f} | {macs:,} | {params:,} |"
        )
    lines += [
        "",
        "Latency: median of 100 batch-1 invokes (ai-edge-litert, XNNPACK) on the shared 2-core build machine, "
        "measured one model after the other; see benchmarks/results/lowrank.md for repeated runs.",
        "",
        "Ranks:",
        "",
        "```",
        result.plan.summary(),
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-macs", type=float, default=0.4)
    parser.add_argument("--method", default="tucker2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument(
        "--polish-epochs",
        type=int,
        default=0,
        help="then a second distillation from the float model: soft targets only, mixup 0.2 (0: none)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite the shipped files")
    parser.add_argument("--teacher", type=Path, default=TEACHER)
    parser.add_argument("--work", type=Path, default=WORK, help="folder of the resumable state")
    parser.add_argument("--out", type=Path, default=OUT, help="shipped files, without suffix")
    parser.add_argument("--eval-images", type=int, default=EVAL_IMAGES)
    parser.add_argument("--limit", type=int, help="images per split for the finetune (dry runs)")
    parser.add_argument("--search-only", action="store_true", help="stop after the search table is complete")
    args = parser.parse_args()
    work, out = args.work, args.out

    import keras

    from tfcompress.convert import convert, load_keras_model
    from tfcompress.evaluate import evaluate
    from tfcompress.fileio import atomic_output, check_output_path, write_text_atomic
    from tfcompress.lowrank import apply_plan, finetune, model_macs

    for suffix in (".keras", ".tflite", ".md"):
        check_output_path(out.parent / (out.name + suffix), args.force)
    work.mkdir(parents=True, exist_ok=True)
    teacher = load_keras_model(args.teacher)
    result = search(teacher, args.target_macs, args.method, work, args.eval_images)
    print(result.plan.summary(), flush=True)
    if args.search_only:
        return
    factorized = apply_plan(teacher, result.plan, verbose=1)
    tuned_path = work / f"tuned_{args.method}_{args.target_macs:g}.keras"
    if tuned_path.is_file():
        tuned = keras.models.load_model(tuned_path)
    else:
        tuned = finetune(
            factorized,
            tuned_path,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            teacher=teacher,
            backup_dir=work / "backup",
            limit=args.limit,
            verbose=2,
        )
    if args.polish_epochs > 0:
        tuned_path, tuned = polish(tuned, teacher, args, work)
    with atomic_output(out.parent / (out.name + ".keras"), args.force) as tmp:
        shutil.copyfile(tuned_path, tmp)
    convert(tuned, out.parent / (out.name + ".tflite"), force=args.force)
    float_tflite = work / "flowers_float.tflite"
    if not float_tflite.is_file():
        convert(teacher, float_tflite)
    evals = {
        name: {threads: evaluate(path, split="test", threads=threads, runs=100) for threads in (1, 2)}
        for name, path in (("flowers_float", float_tflite), ("flowers_lowrank", out.parent / (out.name + ".tflite")))
    }
    costs = {
        "flowers_float": (model_macs(teacher), teacher.count_params()),
        "flowers_lowrank": (model_macs(tuned), tuned.count_params()),
    }
    command = (
        f"nice -n 5 .venv/bin/python scripts/make_flowers_lowrank.py --target-macs {args.target_macs:g} "
        f"--method {args.method} --epochs {args.epochs} --learning-rate {args.learning_rate:g} "
        f"--eval-images {args.eval_images}" + (f" --polish-epochs {args.polish_epochs}" if args.polish_epochs else "")
    )
    text = card(result, evals, command, costs, teacher.inputs[0].shape[1], args.polish_epochs)
    write_text_atomic(out.parent / (out.name + ".md"), text, force=args.force)
    print(text)


if __name__ == "__main__":
    main()
