"""Where the float teacher's errors are, and whether test-time tricks recover any of them.

    nice -n 5 .venv/bin/python benchmarks/float_diagnostics.py [--model models/flowers_float.keras]

For the shipped float model (Keras, on flowers5 ``val.txt`` and ``test.txt``):

- per-class top-1 and the confusion matrix of each split, and the class mix of each split
  (a split with more of the hard classes scores lower with the same model);
- test-time input size: the weights run at larger inputs (the model is fully convolutional
  with global pooling). Training on random-resized crops makes objects look larger than at
  test time, so testing at a higher resolution can help ("FixRes", Touvron et al. 2019);
- horizontal-flip test-time augmentation: the mean of the logits of an image and its mirror.

Writes ``benchmarks/results/float_diagnostics.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def at_input_size(model, size: int):
    """The same architecture and weights built for ``size`` x ``size`` inputs."""
    from tfcompress.models import build_model

    config = model.get_config()
    layers = {layer["name"]: layer for layer in config["layers"]}
    if model.name.startswith("resnet") and "stem_conv" in layers:
        width = int(layers["stem_conv"]["config"]["filters"])
        rebuilt = build_model(model.name, num_classes=int(model.outputs[0].shape[-1]), image_size=size, width=width)
        rebuilt.set_weights(model.get_weights())
        return rebuilt
    raise SystemExit(f"{model.name}: only the zoo ResNets can be rebuilt at another input size here")


def evaluate_split(model, split: str, size: int) -> dict:
    """Top-1 with and without flip TTA, per-class top-1 and the confusion matrix on ``split``."""
    from tfcompress.data import load_split

    images = load_split(None, split, size)
    x = images.images.astype(np.float32)
    logits = model.predict(x, batch_size=64, verbose=0)
    mirrored = model.predict(x[:, :, ::-1], batch_size=64, verbose=0)
    predicted = logits.argmax(1)
    matrix = confusion(images.labels, predicted, len(images.class_names))
    return {
        "images": len(images.labels),
        "top1": float((predicted == images.labels).mean()),
        "top1_flip_tta": float(((logits + mirrored).argmax(1) == images.labels).mean()),
        "class_names": images.class_names,
        "class_counts": np.bincount(images.labels, minlength=len(images.class_names)).tolist(),
        "per_class_top1": (np.diag(matrix) / matrix.sum(1)).tolist(),
        "confusion": matrix.tolist(),
    }


def markdown(result: dict) -> str:
    """The report."""
    native = result["native_size"]
    lines = [
        "# Float teacher: errors by class, test-time size and flip TTA",
        "",
        f"Model: `{result['model']}` (trained at {native} px). Reproduce: "
        "`nice -n 5 .venv/bin/python benchmarks/float_diagnostics.py`.",
        "",
        "| input px | split | top-1 | top-1, flip TTA |",
        "|---|---|---|---|",
    ]
    for size, splits in result["sizes"].items():
        for split, row in splits.items():
            lines.append(f"| {size} | {split} | {100 * row['top1']:.2f}% | {100 * row['top1_flip_tta']:.2f}% |")
    names = result["sizes"][str(native)]["val"]["class_names"]
    lines += [
        "",
        f"## Per class at {native} px",
        "",
        "| class | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for split in ("val", "test"):
        row = result["sizes"][str(native)][split]
        total = sum(row["class_counts"])
        lines.append(f"| {split} share | " + " | ".join(f"{100 * c / total:.1f}%" for c in row["class_counts"]) + " |")
        lines.append(f"| {split} top-1 | " + " | ".join(f"{100 * a:.1f}%" for a in row["per_class_top1"]) + " |")
    for split in ("val", "test"):
        row = result["sizes"][str(native)][split]
        lines += ["", f"Confusion on {split} (rows: true class, columns: predicted; order as above):", "", "```"]
        lines += [" ".join(f"{v:4d}" for v in r) for r in row["confusion"]]
        lines.append("```")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models/flowers_float.keras"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 128], help="larger test-time input sizes")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    from tfcompress.convert import load_keras_model
    from tfcompress.fileio import write_text_atomic

    model = load_keras_model(args.model)
    native = int(model.inputs[0].shape[1])
    result = {"model": Path(args.model).name, "native_size": native, "sizes": {}}
    for size in [native, *args.sizes]:
        sized = model if size == native else at_input_size(model, size)
        result["sizes"][str(size)] = {split: evaluate_split(sized, split, size) for split in ("val", "test")}
        print(size, {s: round(r["top1"], 4) for s, r in result["sizes"][str(size)].items()}, flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "float_diagnostics.json", json.dumps(result, indent=1) + "\n", force=True)
    write_text_atomic(args.results / "float_diagnostics.md", markdown(result), force=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
