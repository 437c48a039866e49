"""Are the float models' test errors variance or bias? Ensembles, shared errors, and a sheet of the errors.

    nice -n 5 .venv/bin/python benchmarks/float_errors.py [--models A.keras B.keras ...] [--sheet 80]

For independently trained float models (default: the shipped teacher and the CutMix run of
``scripts/train_flowers_float.py --recipe cutmix-100``), on flowers5 ``val.txt`` and ``test.txt``:

- each model's top-1, and how often two models predict the same class;
- the ensemble: top-1 of the mean softmax ``p(x) = 1/M sum_m softmax(f_m(x))``, with and without
  horizontal-flip test-time augmentation. Averaging removes the errors that differ between runs
  (variance); what it cannot remove are the errors every run makes (bias: data, labels, architecture);
- the test images every model gets wrong;
- a contact sheet (PNG) of the test errors the ensemble is most confident about, each with its file
  name, the folder's label and the prediction, for a person to judge what kind of errors they are.

Writes ``benchmarks/results/float_errors.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = ("models/flowers_float.keras", "models/.work/float_cutmix100.keras")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def ensemble_probabilities(probabilities: list[np.ndarray]) -> np.ndarray:
    """The mean of the members' class probabilities, shape (N, classes)."""
    return np.mean(np.stack(probabilities), axis=0)


def shared_errors(predictions: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the images every member gets wrong."""
    return np.all(np.stack([p != labels for p in predictions]), axis=0)


def pairwise_agreement(predictions: list[np.ndarray]) -> list[float]:
    """Top-1 agreement of every pair of members (i < j)."""
    return [
        float(np.mean(predictions[i] == predictions[j]))
        for i in range(len(predictions))
        for j in range(i + 1, len(predictions))
    ]


def most_confident_errors(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the wrongly predicted images, highest predicted probability first, at most ``count``."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    order = np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")
    return wrong[order[:count]]


def split_probabilities(models: list, split: str) -> tuple:
    """The split's images and, per model, softmax of the plain and of the flip-averaged logits."""
    from tfcompress.data import load_split

    size = int(models[0].inputs[0].shape[1])
    images = load_split(None, split, size)
    x = images.images.astype(np.float32)
    plain, flipped = [], []
    for model in models:
        logits = model.predict(x, batch_size=64, verbose=0)
        mirrored = model.predict(x[:, :, ::-1], batch_size=64, verbose=0)
        plain.append(softmax(logits))
        flipped.append(softmax((logits + mirrored) / 2))
    return images, plain, flipped


def contact_sheet(images, indices: np.ndarray, probabilities: np.ndarray, columns: int = 8) -> bytes:
    """PNG (256 colours) of a grid of ``images.images[indices]``, titled: file, label, prediction, probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(indices) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.6 * rows))
    names = images.class_names
    for axis in np.ravel(axes):
        axis.axis("off")
    for rank, (axis, index) in enumerate(zip(np.ravel(axes), indices, strict=False)):
        predicted = int(probabilities[index].argmax())
        axis.imshow(images.images[index].astype(np.uint8))
        axis.set_title(
            f"{rank} {Path(images.paths[index]).stem[:14]}\nlabel {names[images.labels[index]]}\n"
            f"pred {names[predicted]} {probabilities[index, predicted]:.2f}",
            fontsize=7,
        )
    figure.tight_layout()
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=80)
    plt.close(figure)
    # 256 colours keep the photos recognisable at a third of the bytes of a true-colour PNG
    from PIL import Image

    compact = io.BytesIO()
    Image.open(rendered).convert("RGB").quantize(256).save(compact, format="PNG", optimize=True)
    return compact.getvalue()


def markdown(result: dict) -> str:
    lines = [
        "# Float models: variance or bias? Ensembles and shared errors",
        "",
        "Models: " + ", ".join(f"`{m}`" for m in result["models"]) + ". Reproduce: "
        "`nice -n 5 .venv/bin/python benchmarks/float_errors.py`.",
        "",
        "| split | "
        + " | ".join(f"model {i}" for i in range(len(result["models"])))
        + " | ensemble | ensemble, flip TTA | agreement of pairs | wrong for every model |",
        "|---" * (len(result["models"]) + 5) + "|",
    ]
    for split, row in result["splits"].items():
        members = " | ".join(f"{100 * a:.2f}%" for a in row["member_top1"])
        agreement = ", ".join(f"{100 * a:.1f}%" for a in row["pairwise_agreement"])
        lines.append(
            f"| {split} | {members} | {100 * row['ensemble_top1']:.2f}% | {100 * row['ensemble_flip_top1']:.2f}% | "
            f"{agreement} | {row['shared_errors']} of {row['images']} |"
        )
    test = result["splits"]["test"]
    lines += [
        "",
        f"Contact sheet of the {len(result['sheet'])} test errors the ensemble is most sure of: "
        "`benchmarks/results/float_errors.png` (file name, the folder's label, the prediction and its probability).",
        "",
        f"On test the ensemble gains {100 * (test['ensemble_top1'] - max(test['member_top1'])):+.2f} points over "
        "its best member: the errors are shared by the runs, so averaging runs (or distilling an ensemble "
        "into one network) cannot move the figure far.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="float .keras models, same input")
    parser.add_argument("--sheet", type=int, default=80, help="test errors on the contact sheet")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    from tfcompress.convert import load_keras_model
    from tfcompress.errors import TfcompressError
    from tfcompress.fileio import write_bytes_atomic, write_text_atomic

    try:
        models = [load_keras_model(ROOT / path) for path in args.models]
    except TfcompressError as error:
        raise SystemExit(f"error: {error}") from None
    result = {"models": args.models, "splits": {}}
    ensembles = {}
    for split in ("val", "test"):
        images, plain, flipped = split_probabilities(models, split)
        predictions = [p.argmax(1) for p in plain]
        ensemble = ensemble_probabilities(plain)
        ensembles[split] = images, ensemble
        result["splits"][split] = {
            "images": len(images.labels),
            "member_top1": [float(np.mean(p == images.labels)) for p in predictions],
            "pairwise_agreement": pairwise_agreement(predictions),
            "ensemble_top1": float(np.mean(ensemble.argmax(1) == images.labels)),
            "ensemble_flip_top1": float(np.mean(ensemble_probabilities(flipped).argmax(1) == images.labels)),
            "shared_errors": int(shared_errors(predictions, images.labels).sum()),
        }
        print(split, result["splits"][split], flush=True)
    images, ensemble = ensembles["test"]
    sheet = most_confident_errors(ensemble, images.labels, args.sheet)
    result["sheet"] = [
        {
            "path": images.paths[i],
            "label": images.class_names[images.labels[i]],
            "predicted": images.class_names[int(ensemble[i].argmax())],
            "probability": float(ensemble[i].max()),
        }
        for i in sheet
    ]
    args.results.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.results / "float_errors.png", contact_sheet(images, sheet, ensemble), force=True)
    write_text_atomic(args.results / "float_errors.json", json.dumps(result, indent=1) + "\n", force=True)
    write_text_atomic(args.results / "float_errors.md", markdown(result), force=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
