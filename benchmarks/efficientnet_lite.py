"""Which settings the EfficientNet-Lite0 ImageNet checkpoint was trained with, and its frozen features on flowers5.

For each padding (TF "same" / symmetric), input normalization ((x - 127) / 128 / ImageNet mean-std)
and BN epsilon (1e-3 / 1e-5), on flowers5 images (``tfcompress.data.load_split``):

- BN fit: for every BN layer, the per-channel mean and variance of its input (the previous conv's
  output) measured on ``--bn-images`` training images at 224 px, against the checkpoint's running
  statistics; reported as the median over channels and layers of ``|log(measured var / running var)|``
  and of ``|measured mean - running mean| / sqrt(running var)`` (0 is a perfect fit);
- daisy top-5: the share of ``test.txt`` daisies at 224 px whose ImageNet top-5 holds class 985 "daisy";
- confidence: the mean top-1 ImageNet probability over ``test.txt`` at 224 px (a mis-wired network is less sure).

The BN fit is biased on these images: flowers5's upscaled, blurry JPEGs give lower activations than
ImageNet's at every depth, so a setting that inflates activations (symmetric padding's border zeros,
a larger input scale) looks closer past the stem without being right; only the stem BN, whose input
depends on nothing but the normalization, is a clean test of it.

Then, with the chosen settings, the linear probe (``--probe``): pooled 1280-d features of flowers5
train at 128 and 224 px, scikit-learn's logistic regression, top-1 on ``test.txt``.

    nice -n 10 .venv/bin/python benchmarks/efficientnet_lite.py --probe   # -> results/efficientnet_lite.md
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import keras
import numpy as np

from tfcompress.data import load_split
from tfcompress.models.efficientnet_lite import efficientnet_lite0

IMAGENET_DAISY = 985
RESULTS = Path(__file__).parent / "results" / "efficientnet_lite.md"


def bn_fit(model: keras.Model, images: np.ndarray) -> tuple[float, float]:
    """Median |log var ratio| and median standardized mean error of every BN's input against its running stats."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [layer.input for layer in bns])
    outputs = probe.predict(images, batch_size=16, verbose=0)
    log_ratios, mean_errors = [], []
    for layer, value in zip(bns, outputs, strict=True):
        _, _, running_mean, running_var = (w.numpy() for w in layer.weights)
        flat = value.reshape(-1, value.shape[-1])
        log_ratios.append(np.abs(np.log((flat.var(axis=0) + 1e-12) / running_var)))
        mean_errors.append(np.abs(flat.mean(axis=0) - running_mean) / np.sqrt(running_var))
    return float(np.median(np.concatenate(log_ratios))), float(np.median(np.concatenate(mean_errors)))


def imagenet_predictions(model: keras.Model, daisies: np.ndarray, images: np.ndarray) -> tuple[float, float]:
    """Share of ``daisies`` whose ImageNet top-5 holds class 985 "daisy"; mean top-1 probability on ``images``."""
    top5 = np.argsort(model.predict(daisies, batch_size=16, verbose=0), axis=1)[:, -5:]
    probabilities = keras.ops.softmax(model.predict(images, batch_size=16, verbose=0)).numpy()
    return float(np.mean(np.any(top5 == IMAGENET_DAISY, axis=1))), float(probabilities.max(axis=1).mean())


def features(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Pooled 1280-d features (the input of the classifier)."""
    pooled = keras.Model(model.input, model.get_layer("pool").output)
    return pooled.predict(images, batch_size=32, verbose=0)


def linear_probe(image_size: int) -> float:
    """Top-1 on flowers5 test of a logistic regression on frozen pooled features at ``image_size``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    model = efficientnet_lite0(image_size=image_size, weights="imagenet")
    train, test = load_split(None, "train", image_size), load_split(None, "test", image_size)
    scaler = StandardScaler().fit(features(model, train.images))
    classifier = LogisticRegression(max_iter=2000, C=0.1)
    classifier.fit(scaler.transform(features(model, train.images)), train.labels)
    return float(classifier.score(scaler.transform(features(model, test.images)), test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bn-images", type=int, default=32, help="training images for the BN statistics")
    parser.add_argument("--probe", action="store_true", help="also run the linear probe at 128 and 224 px")
    args = parser.parse_args()
    bn_images = load_split(None, "train", 224, limit=args.bn_images).images.astype(np.float32)
    test = load_split(None, "test", 224)
    daisies = test.images[test.labels == test.class_names.index("daisy")].astype(np.float32)
    lines = [
        "# EfficientNet-Lite0 ImageNet checkpoint: settings and frozen features on flowers5",
        "",
        f"`benchmarks/efficientnet_lite.py`; BN fit on {len(bn_images)} train images, daisy top-5 on "
        f"{len(daisies)} test daisies, all at 224 px (flowers5's 128 px images upscaled).",
        "",
        "| padding | normalization | BN epsilon | median abs log var ratio | median abs mean error (std) "
        "| daisy in ImageNet top-5 | mean ImageNet top-1 probability (test) |",
        "|---|---|---|---|---|---|---|",
    ]
    for padding, normalization, epsilon in itertools.product(("same", "symmetric"), ("tf", "imagenet"), (1e-3, 1e-5)):
        model = efficientnet_lite0(
            image_size=224, weights="imagenet", padding=padding, normalization=normalization, bn_epsilon=epsilon
        )
        log_ratio, mean_error = bn_fit(model, bn_images)
        daisy, confidence = imagenet_predictions(model, daisies, test.images.astype(np.float32))
        row = (
            f"| {padding} | {normalization} | {epsilon:g} | {log_ratio:.3f} | {mean_error:.3f} "
            f"| {100 * daisy:.1f}% | {confidence:.3f} |"
        )
        print(row, flush=True)
        lines.append(row)
    if args.probe:
        lines += ["", "Linear probe (same, tf, 1e-3; logistic regression C=0.1 on standardized pooled features):", ""]
        for size in (128, 224):
            line = f"- {size} px: {100 * linear_probe(size):.2f}% top-1 on flowers5 test.txt"
            print(line, flush=True)
            lines.append(line)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
