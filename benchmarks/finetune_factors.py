"""Why a compression finetune fails on a pretrained mobile network: one factor changed at a time.

    .venv/bin/python benchmarks/finetune_factors.py [--model models/flowers_effnet_lite0.keras]
        [--method prune] [--sparsity 0.5] [--variants base,lr-0.001,...] [--limit N]

For the ``prune`` method (magnitude pruning to ``--sparsity`` on the polynomial schedule,
finetuned by distillation from the input model, as the ``pruned`` recipe does) each variant
changes one factor of the recipe's default finetune (SGD + Nesterov at lr 0.01, BatchNorm in
training mode, one global magnitude threshold, every conv / dense kernel pruned, 6 epochs):
the optimizer and learning rate, the BatchNorm policy, the allocation, which layer kinds are
pruned, the number of epochs. Each variant's Keras model is scored on the val and test splits
(top-1), the test change against the input model with its paired 95% interval
(:func:`tfcompress.paired.paired_difference`). Results are kept per variant in
``benchmarks/results/finetune_factors_<model>_<method>.json`` (a rerun skips the variants done)
and the table in the ``.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Each variant: the finetune options it changes from ``base``.
VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "lr-0.001": {"learning_rate": 0.001},
    "adamw-1e-4": {"optimizer": "adam", "learning_rate": 1e-4},
    "bn-freeze": {"freeze_batchnorm": True},
    "allocation-layer": {"allocation": "layer"},
    "skip-depthwise": {"exclude": "depthwise"},
    "epochs-12": {"epochs": 12},
}

BASE = {
    "learning_rate": 0.01,
    "optimizer": "sgd",
    "freeze_batchnorm": False,
    "allocation": "global",
    "exclude": "none",
    "epochs": 6,
}


def excluded_layers(model, which: str) -> list[str]:
    """The layer names a variant leaves unpruned: ``none`` or ``depthwise``."""
    import keras

    if which == "none":
        return []
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]


def correct_on(model, split: str, limit: int | None):
    """Per-image top-1 correctness of a Keras model on ``split``."""
    from tfcompress.data import load_split

    images = load_split(None, split, int(model.inputs[0].shape[1]), limit=limit)
    logits = model.predict(images.images, batch_size=64, verbose=0)
    return (logits.argmax(1) == images.labels).tolist()


def run_variant(model, name: str, sparsity: float, work: Path, limit: int | None) -> dict:
    from tfcompress.pruning.finetune import FinetuneConfig
    from tfcompress.pruning.pipeline import prune_and_finetune

    options = {**BASE, **VARIANTS[name]}
    config = FinetuneConfig(
        epochs=int(options["epochs"]),
        learning_rate=float(options["learning_rate"]),
        optimizer=str(options["optimizer"]),
        freeze_batchnorm=bool(options["freeze_batchnorm"]),
    )
    start = time.perf_counter()
    pruned = prune_and_finetune(
        model,
        None,
        sparsity,
        config=config,
        teacher=model,
        exclude=excluded_layers(model, str(options["exclude"])),
        allocation=str(options["allocation"]),
        backup_dir=work / name,
        limit=limit,
        verbose=2,
    )
    return {
        "variant": name,
        "options": options,
        "minutes": round((time.perf_counter() - start) / 60, 1),
        "val": correct_on(pruned, "val", limit),
        "test": correct_on(pruned, "test", limit),
    }


def table(results: dict, baseline: dict, model_name: str, sparsity: float) -> str:
    from tfcompress.paired import paired_difference

    lines = [
        f"# Pruning finetune factors on `{model_name}` (sparsity {sparsity})",
        "",
        "Written by `python benchmarks/finetune_factors.py "
        f"--model models/{model_name} --sparsity {sparsity}`. Keras top-1 on flowers5 val (409) and test (650); "
        "the test change is against the input model, paired 95% interval. Each variant changes one factor of "
        "`base` (SGD + Nesterov lr 0.01 cosine, BatchNorm updated, one global threshold, every conv/dense "
        "kernel, 6 epochs, distilled from the input model).",
        "",
        "| variant | changes | val | test | test change (95% CI) | minutes |",
        "|---|---|---:|---:|---:|---:|",
    ]
    val0, test0 = baseline["val"], baseline["test"]
    lines.append(f"| input | - | {100 * sum(val0) / len(val0):.2f}% | {100 * sum(test0) / len(test0):.2f}% | - | - |")
    for name, result in results.items():
        diff = paired_difference(result["test"], test0)
        changes = ", ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "-"
        lines.append(
            f"| {name} | {changes} | {100 * sum(result['val']) / len(result['val']):.2f}% | "
            f"{100 * sum(result['test']) / len(result['test']):.2f}% | "
            f"{diff.points:+.2f} ({diff.low:+.2f}, {diff.high:+.2f}) | {result['minutes']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models/flowers_effnet_lite0.keras")
    parser.add_argument("--sparsity", type=float, default=0.5, help="pruning sparsity (default: 0.5)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="images per split (quick runs)")
    parser.add_argument("--work", type=Path, default=ROOT / "models/.work/finetune_factors")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if not args.model.is_file():
        parser.error(f"no such model file: {args.model}")
    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import write_text_atomic

    stem = f"finetune_factors_{args.model.stem}_prune{round(100 * args.sparsity)}"
    stem += f"_limit{args.limit}" if args.limit else ""
    store = ROOT / "benchmarks/results" / f"{stem}.json"
    saved = json.loads(store.read_text()) if store.is_file() else {}
    model = load_keras_model(args.model)
    if "input" not in saved:
        saved["input"] = {"val": correct_on(model, "val", args.limit), "test": correct_on(model, "test", args.limit)}
    for name in names:
        if name in saved.get("variants", {}):
            continue
        print(f"== variant {name}: {VARIANTS[name] or 'the recipe default'}", flush=True)
        saved.setdefault("variants", {})[name] = run_variant(model, name, args.sparsity, args.work / stem, args.limit)
        write_text_atomic(store, json.dumps(saved), force=True)
        text = table(saved["variants"], saved["input"], args.model.name, args.sparsity)
        write_text_atomic(store.with_suffix(".md"), text, force=True)
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
