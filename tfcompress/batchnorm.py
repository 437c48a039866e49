"""Whether a model's BatchNorm statistics were learned on the user's data, and freezing them.

A model trained on the data (a ResNet trained from scratch with ``tfcompress train``) holds
moving statistics that match the data's batch statistics. A pretrained backbone fine-tuned with
its BatchNorm statistics frozen (the Keras transfer-learning recipe; ``tfcompress train
--pretrained``) holds statistics from ImageNet: the layers after each BatchNorm were fine-tuned
for those. Finetuning such a model with BatchNorm in training mode (a compression stage's
finetune) renormalizes every layer by the small batches' statistics of another data set and
undoes the fine-tuning: on the fine-tuned EfficientNet-Lite0 of flowers5 (76.77% test),
``tfcompress compress ... --recipe pq --set pq.block_size=small --set pq.batchnorm=update``
ended at 39.38% test top-1 and ``... =freeze`` at 65.85%.

The test: the mismatch ``median over layers of median over channels |log((var + eps) /
(moving_var + eps))|`` between each BatchNorm's input variance on unaugmented training images
and its moving variance. Measured on flowers5 (512 images, ``benchmarks/batchnorm_mismatch.py``):
ResNet-18 and the slimmed ResNet trained on it 0.05-0.06, the distilled ResNet-8 student 0.15,
the fine-tuned EfficientNet-Lite0 0.47. Above :data:`MISMATCH_LIMIT` the statistics are taken as
not learned here, and the compress stages that train only codebooks or centroids keep them frozen
(:func:`tfcompress.compress.pipeline.resolve_batchnorm`).
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np

#: The mismatch above which BatchNorm statistics are frozen (see the module docstring).
MISMATCH_LIMIT = 0.3

#: Learning rate of a frozen-statistics finetune (AdamW) relative to a stage's SGD learning rate:
#: 0.01 becomes 1e-4, the step ``tfcompress train --pretrained`` fine-tunes with.
FROZEN_LEARNING_RATE_SCALE = 0.01


def batchnorm_layers(model: keras.Model) -> Iterator[keras.layers.BatchNormalization]:
    """Every ``BatchNormalization`` layer of ``model``, nested models included."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer
        elif isinstance(layer, keras.Model):
            yield from batchnorm_layers(layer)


def statistics_mismatch(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> float:
    """Median over BatchNorm layers of the median ``|log(var / moving_var)|`` over channels on ``images``.

    Returns 0.0 for a model without top-level BatchNorm layers (nothing to freeze).
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0.0
    probe = keras.Model(model.input, [layer.input for layer in layers])
    sums = [np.zeros(layer.input.shape[-1]) for layer in layers]
    squares = [np.zeros(layer.input.shape[-1]) for layer in layers]
    counts = [0] * len(layers)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        for index, output in enumerate(outputs):
            flat = np.asarray(output, dtype=np.float64).reshape(-1, output.shape[-1])
            sums[index] += flat.sum(0)
            squares[index] += (flat**2).sum(0)
            counts[index] += len(flat)
    per_layer = []
    for layer, total, square, count in zip(layers, sums, squares, counts, strict=True):
        mean = total / count
        variance = np.maximum(square / count - mean**2, 0.0)
        moving = np.asarray(layer.moving_variance, dtype=np.float64)
        per_layer.append(np.median(np.abs(np.log((variance + layer.epsilon) / (moving + layer.epsilon)))))
    return float(np.median(per_layer))


def freeze_statistics(model: keras.Model) -> keras.Model:
    """Make every BatchNorm of ``model`` non-trainable: in Keras 3 it then runs in inference mode.

    Its moving statistics, gamma and beta stay as they are while the rest trains (the
    fine-tuning recipe of the Keras transfer-learning guide). Returns ``model``.
    """
    for layer in batchnorm_layers(model):
        layer.trainable = False
    return model


def unfreeze_statistics(model: keras.Model) -> keras.Model:
    """Undo :func:`freeze_statistics` (the saved model trains as the user's did). Returns ``model``."""
    for layer in batchnorm_layers(model):
        layer.trainable = True
    return model
