"""Running a trained model at another input resolution.

A network trained on random-resized crops sees objects larger than they appear in whole test
images; evaluating at a higher resolution than the training crops undoes that shift
(Touvron et al. 2019, "Fixing the train-test resolution discrepancy", FixRes). Every zoo
model is fully convolutional up to global pooling, so the same weights run at any size.
"""

from __future__ import annotations

import copy

import keras

from tfcompress.errors import TfcompressError


def with_input_size(model: keras.Model, image_size: int) -> keras.Model:
    """A new functional model like ``model`` taking ``image_size`` x ``image_size`` inputs, same weights.

    Raises:
        TfcompressError: ``model`` is not a functional model with one image input.
    """
    config = copy.deepcopy(model.get_config())
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise TfcompressError(f"model {model.name} is not a functional model with one input; cannot resize it")
    shape = inputs[0]["config"]["batch_shape"]
    inputs[0]["config"]["batch_shape"] = [shape[0], image_size, image_size, *shape[3:]]
    resized = keras.Model.from_config(config)
    resized.set_weights(model.get_weights())
    return resized
