"""Pieces shared by the zoo's models: the input rescaling and the classifier head."""

from __future__ import annotations

import keras
from keras import layers


def input_block(image_size: int):
    """An RGB input in [0, 255] and its rescaling to [-1, 1] inside the graph.

    Keeping the rescaling in the model lets a ``.tflite`` take raw pixels (``uint8`` for
    a full-integer model), which is what a camera app has.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    return inputs, x


def classifier_head(x, num_classes: int, dropout: float):
    """Global average pooling, dropout, and a dense layer to ``num_classes`` logits."""
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, name="logits")(x)
