"""BinaryConv2D / BinaryDense against hand-made references, save/load, and a distributed train step."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.binary import BinaryConv2D, BinaryDense, WeightClip
from tfcompress.binary.zoo import binary_resnet
from tfcompress.distribute import get_strategy
from tfcompress.errors import TfcompressError
from tfcompress.models import build_model


def sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


def reference_conv(x, w, stride: int, dilation: int, padding: str, pad_value: float):
    """Plain NHWC conv with loops over the kernel taps, TF's "same" geometry, any pad value."""
    n, h, wd, _ = x.shape
    kh, kw, _, filters = w.shape
    if padding == "same":
        out_h, out_w = math.ceil(h / stride), math.ceil(wd / stride)
        pad_h = max((out_h - 1) * stride + (kh - 1) * dilation + 1 - h, 0)
        pad_w = max((out_w - 1) * stride + (kw - 1) * dilation + 1 - wd, 0)
        x = np.pad(
            x,
            [(0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)],
            constant_values=pad_value,
        )
    else:
        out_h = (h - (kh - 1) * dilation - 1) // stride + 1
        out_w = (wd - (kw - 1) * dilation - 1) // stride + 1
    out = np.zeros((n, out_h, out_w, filters), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dilation :: stride, j * dilation :: stride, :][:, :out_h, :out_w, :]
            out += patch @ w[i, j]
    return out.astype(np.float32)


def make_conv(**kwargs) -> BinaryConv2D:
    defaults = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)
    return BinaryConv2D(**{**defaults, **kwargs})


CASES = [
    # (size, filters, kernel, stride, dilation, padding, pad_values)
    (7, 4, 3, 1, 1, "same", 0.0),
    (7, 4, 3, 1, 1, "same", 1.0),
    (8, 5, 3, 2, 1, "same", 1.0),  # even size, stride 2: the extra pad pixel goes after
    (7, 5, 3, 2, 1, "same", 1.0),
    (8, 4, 3, 2, 1, "same", 0.0),
    (9, 3, 3, 1, 2, "same", 1.0),  # dilation 2
    (9, 3, 3, 1, 2, "valid", 0.0),
    (8, 4, 2, 2, 1, "same", 1.0),  # even kernel
]


@pytest.mark.parametrize(("size", "filters", "kernel", "stride", "dilation", "padding", "pad_values"), CASES)
def test_binary_conv_equals_conv_of_signs(size, filters, kernel, stride, dilation, padding, pad_values):
    rng = np.random.default_rng(size * 100 + stride * 10 + dilation)
    x = rng.normal(size=(2, size, size, 6)).astype(np.float32)
    layer = make_conv(
        filters=filters,
        kernel_size=kernel,
        strides=stride,
        dilation_rate=dilation,
        padding=padding,
        pad_values=pad_values,
    )
    y = keras.ops.convert_to_numpy(layer(x))
    w = keras.ops.convert_to_numpy(layer.kernel)
    expected = reference_conv(sign(x), sign(w), stride, dilation, padding, pad_values)
    np.testing.assert_array_equal(y, expected)  # sums of +-1: exact in float32


def test_one_padding_differs_from_zero_padding_only_at_the_border():
    x = np.random.default_rng(1).normal(size=(1, 6, 6, 3)).astype(np.float32)
    zero, one = (
        make_conv(filters=2, kernel_size=3, padding="same"),
        make_conv(filters=2, kernel_size=3, padding="same", pad_values=1.0),
    )
    zero.build(x.shape)
    one.build(x.shape)
    one.kernel.assign(zero.kernel)
    w = sign(keras.ops.convert_to_numpy(zero.kernel))
    y0, y1 = keras.ops.convert_to_numpy(zero(x)), keras.ops.convert_to_numpy(one(x))
    np.testing.assert_array_equal(y0[:, 1:-1, 1:-1], y1[:, 1:-1, 1:-1])
    assert not np.array_equal(y0, y1)
    # Independent check: padding sign(x) with +1 = padding (sign(x) - 1) with 0, plus 1 everywhere.
    shifted = tf.nn.conv2d(sign(x) - 1, w, 1, "SAME").numpy() + w.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(y1, shifted, atol=1e-5)


def test_conv_magnitude_aware_kernel_bias_and_activation():
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 4)).astype(np.float32)
    layer = BinaryConv2D(
        3, 3, padding="same", pad_values=1.0, activation="relu", input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign", bias_initializer=keras.initializers.Constant(0.5),
    )  # fmt: skip
    y = keras.ops.convert_to_numpy(layer(x))
    w = keras.ops.convert_to_numpy(layer.kernel)
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    expected = np.maximum(reference_conv(sign(x), sign(w) * alpha, 1, 1, "same", 1.0) + 0.5, 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_float_inputs_when_no_input_quantizer():
    x = np.random.default_rng(3).normal(size=(1, 5, 5, 2)).astype(np.float32)
    layer = BinaryConv2D(2, 3, kernel_quantizer="ste_sign", use_bias=False)
    y = keras.ops.convert_to_numpy(layer(x))
    expected = reference_conv(x, sign(keras.ops.convert_to_numpy(layer.kernel)), 1, 1, "valid", 0.0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_binary_dense_equals_matmul_of_signs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 37)).astype(np.float32)
    layer = BinaryDense(5, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign")
    layer.build(x.shape)
    layer.bias.assign(np.arange(5, dtype=np.float32))
    w = keras.ops.convert_to_numpy(layer.kernel)
    expected = sign(x) @ (sign(w) * np.abs(w).mean(axis=0)) + np.arange(5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_dense_gradient_reaches_latent_kernel_through_ste():
    x = tf.constant(np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32))
    layer = BinaryDense(3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)
    layer.build(x.shape)
    latent = np.array(np.linspace(-1.5, 1.5, 18).reshape(6, 3), dtype=np.float32)
    layer.kernel.assign(latent)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    grad = tape.gradient(loss, layer.kernel).numpy()
    # d/dW sum(sign(x) @ sign(W)) = sign(x)^T 1, gated by |W| <= 1
    expected = sign(x.numpy()).sum(axis=0)[:, None] * (np.abs(latent) <= 1)
    np.testing.assert_allclose(grad, expected)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TfcompressError, match=r"pad_values must be 0\.0 or 1\.0"):
        BinaryConv2D(4, 3, pad_values=-1.0)
    with pytest.raises(TfcompressError, match="unknown quantizer 'sign'"):
        BinaryConv2D(4, 3, input_quantizer="sign")
    with pytest.raises(TfcompressError, match="unknown quantizer"):
        BinaryDense(4, kernel_quantizer="xnor")


def test_attributes_the_lowering_relies_on():
    layer = BinaryConv2D(
        8, 3, strides=2, padding="same", pad_values=1.0, dilation_rate=1, input_quantizer="swish_sign",
        kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip", use_bias=False,
    )  # fmt: skip
    assert layer.input_quantizer.name == "swish_sign"
    assert layer.kernel_quantizer.name == "magnitude_aware_sign"
    assert isinstance(layer.kernel_constraint, WeightClip)
    assert (layer.pad_values, layer.padding, layer.strides, layer.use_bias) == (1.0, "same", (2, 2), False)


def test_keras_save_load_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = BinaryConv2D(
        4, 3, padding="same", pad_values=1.0, input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
    )(inputs)  # fmt: skip
    x = keras.layers.BatchNormalization()(x)
    x = BinaryConv2D(4, 3, strides=2, padding="same", input_quantizer="swish_sign", kernel_quantizer="ste_sign")(x)
    x = keras.layers.Flatten()(x)
    outputs = BinaryDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "binary.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = np.random.default_rng(6).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(restored(x)))
    for original, loaded in zip(model.layers, restored.layers, strict=True):
        assert original.get_config() == loaded.get_config()
    assert restored.layers[1].input_quantizer.name == "approx_sign"
    assert isinstance(restored.layers[1].kernel_constraint, WeightClip)


def test_binary_resnet_trains_one_step_under_mirrored_strategy():
    strategy = get_strategy(2)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = binary_resnet(num_classes=3, image_size=16, width=4, stages=(1, 1))
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    binary_layers = [layer for layer in model.layers if isinstance(layer, BinaryConv2D)]
    assert len(binary_layers) == 4
    before = [keras.ops.convert_to_numpy(layer.kernel) for layer in binary_layers]
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(layer.kernel) for layer in binary_layers]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert all(np.abs(a).max() <= 1.0 for a in after)  # weight_clip applied after the update


def test_zoo_layout_float_stem_and_head_binary_body():
    model = build_model("binary_resnet18", num_classes=5, image_size=32, width=4)
    kinds = {layer.name: type(layer) for layer in model.layers}
    assert kinds["stem_conv"] is keras.layers.Conv2D and kinds["logits"] is keras.layers.Dense
    assert sum(kind is BinaryConv2D for kind in kinds.values()) == 16
    assert model.output_shape == (None, 5)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_magnitude_aware_sum_of_zero_is_exactly_zero(kind):
    """An integer popcount sum of 0 must stay exactly 0 (as in the .tflite op), not +-1e-7."""
    rng = np.random.default_rng(0)
    signs = np.concatenate([np.ones(33), -np.ones(33)])[rng.permutation(66)].astype(np.float32)
    kernel = rng.uniform(0.05, 1.0, (66, 16)).astype(np.float32)  # all positive: every sum is sum(signs) = 0
    options = {"input_quantizer": "ste_sign", "kernel_quantizer": "magnitude_aware_sign", "use_bias": False}
    if kind == "dense":
        layer, x, kernel = BinaryDense(16, **options), signs[None], kernel
    else:
        layer, x, kernel = BinaryConv2D(16, 1, **options), signs[None, None, None], kernel[None, None]
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    np.testing.assert_array_equal(np.asarray(layer(x)), 0.0)
