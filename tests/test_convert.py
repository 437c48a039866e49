"""Float and int8 conversion agree with Keras; the lowering seam emits custom ops."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.convert import convert, lowered, register_lowering, to_tflite
from tfcompress.convert.lowering import _RULES
from tfcompress.errors import TfcompressError
from tfcompress.evaluate import TFLiteClassifier
from tfcompress.models import build_model
from tfcompress.runtime import custom_op_names


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    model = build_model("resnet8", num_classes=4, image_size=24, width=8)
    # Non-trivial BatchNorm statistics, so that folding them is exercised.
    x = np.random.default_rng(0).uniform(0, 255, (64, 24, 24, 3)).astype(np.float32)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(64) % 4, epochs=1, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (24, 24, 24, 3)).astype(np.float32)


def test_float_tflite_matches_keras(tiny_model, images):
    classifier = TFLiteClassifier(model_content=to_tflite(tiny_model))
    expected = tiny_model.predict(images, verbose=0)
    np.testing.assert_allclose(classifier.predict(images), expected, atol=1e-4, rtol=1e-4)


def test_int8_tflite_is_integer_and_agrees_on_top1(tiny_model, images):
    content = to_tflite(tiny_model, int8=True, calibration=images)
    classifier = TFLiteClassifier(model_content=content)
    assert classifier.input["dtype"] == np.uint8
    agreement = np.mean(classifier.predict(images).argmax(1) == tiny_model.predict(images, verbose=0).argmax(1))
    assert agreement >= 0.75
    float_size = len(to_tflite(tiny_model))
    assert len(content) < float_size / 2.5


def test_int8_needs_calibration_of_the_right_shape(tiny_model):
    with pytest.raises(TfcompressError, match="calibration"):
        to_tflite(tiny_model, int8=True)
    with pytest.raises(TfcompressError, match="shape"):
        to_tflite(tiny_model, int8=True, calibration=np.zeros((2, 32, 32, 3), np.float32))


def test_convert_writes_atomically_and_refuses_overwrite(tiny_model, tmp_path):
    out = tmp_path / "m.tflite"
    convert(tiny_model, out)
    first = out.read_bytes()
    assert first[4:8] == b"TFL3"
    with pytest.raises(TfcompressError, match="already exists"):
        convert(tiny_model, out)
    assert out.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]  # no temporary file left


class Doubler(keras.layers.Layer):
    """A custom layer for the lowering test: multiplies by two."""

    def call(self, inputs):
        return inputs * 2.0


def _lower_doubler(layer, inputs):
    implements = (
        'name: "TfcTestDouble" attr { key: "tfl_fusable_op" value { b: true } } attr { key: "factor" value { f: 2.0 } }'
    )

    @tf.function(experimental_implements=implements)
    def double(x):
        return x * 2.0

    return double(inputs)


def test_lowering_rule_emits_a_custom_op_and_leaves_the_model_alone():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubler()(keras.layers.Dense(3)(inputs)))
    register_lowering(Doubler, _lower_doubler)
    try:
        ops = custom_op_names(to_tflite(model))
    finally:
        del _RULES[Doubler]
    assert ops == ["TfcTestDouble"]
    assert "call" not in vars(model.layers[-1])  # the rule was bound only during conversion
    with lowered(model) as patched:
        assert patched == []  # no rule registered any more


def test_input_model_is_not_mutated(tiny_model, images):
    before = [w.copy() for w in tiny_model.get_weights()]
    to_tflite(tiny_model, int8=True, calibration=images[:4])
    for a, b in zip(before, tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
