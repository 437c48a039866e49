"""Sign quantizers: forward values, straight-through gradients, aliases and serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.binary import quantizers
from tfcompress.binary.quantizers import (
    ApproxSign,
    MagnitudeAwareSign,
    SteSign,
    SwishSign,
    WeightClip,
    approx_sign,
    magnitude_aware_sign,
    ste_sign,
    swish_sign,
)
from tfcompress.errors import TfcompressError

X = np.array([-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5], dtype=np.float32)
SIGN_X = np.array([-1, -1, -1, 1, 1, 1, 1], dtype=np.float32)


def value_and_grad(fn, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x).numpy()


@pytest.mark.parametrize("fn", [ste_sign, approx_sign, swish_sign, SteSign(0.5), ApproxSign(), SwishSign(2.0)])
def test_forward_is_sign_with_zero_to_plus_one(fn):
    y, _ = value_and_grad(fn, X)
    np.testing.assert_array_equal(y, SIGN_X)


def test_ste_sign_gradient_is_gated_at_clip_value():
    _, grad = value_and_grad(ste_sign, X)
    np.testing.assert_array_equal(grad, [0, 1, 1, 1, 1, 1, 0])
    _, grad = value_and_grad(lambda x: ste_sign(x, clip_value=0.4), X)
    np.testing.assert_array_equal(grad, [0, 0, 0, 1, 1, 0, 0])


def test_ste_sign_passes_upstream_gradient_through():
    x = tf.constant(X)
    upstream = tf.constant(np.arange(1, 8, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(ste_sign(x) * upstream)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 2, 3, 4, 5, 6, 0])


def test_approx_sign_gradient_is_bi_real_triangle():
    _, grad = value_and_grad(approx_sign, X)
    # 2 - 2|x| inside [-1, 1], zero outside
    np.testing.assert_allclose(grad, [0, 0, 1, 2, 1.4, 0, 0], atol=1e-6)


def test_swish_sign_gradient_matches_derivative_of_signswish():
    beta = 5.0

    def sign_swish(x):  # the smooth BNN+ function whose derivative swish_sign passes back
        s = tf.sigmoid(beta * x)
        return 2 * s * (1 + beta * x * (1 - s)) - 1

    _, expected = value_and_grad(sign_swish, X)
    _, grad = value_and_grad(lambda x: swish_sign(x, beta=beta), X)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    assert grad[3] == pytest.approx(beta / 2 * 2)  # at 0: beta * 2 / (1 + 1)


def test_magnitude_aware_sign_scales_each_output_channel_by_mean_abs():
    w = np.array([[[0.5, -2.0], [-0.1, 0.2]], [[0.0, 0.4], [-0.3, -0.6]]], dtype=np.float32)  # (2, 2, 2)
    alpha = np.abs(w).reshape(-1, 2).mean(axis=0)
    y, grad = value_and_grad(magnitude_aware_sign, w)
    np.testing.assert_allclose(y, alpha * np.where(w >= 0, 1, -1), rtol=1e-6)
    # alpha is a constant for the gradient; the sign's STE gate is |w| <= 1
    np.testing.assert_allclose(grad, alpha * (np.abs(w) <= 1), rtol=1e-6)
    assert MagnitudeAwareSign().name == "magnitude_aware_sign"


@pytest.mark.parametrize("alias", ["ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign"])
def test_get_resolves_alias_and_round_trips_serialization(alias):
    quantizer = quantizers.get(alias)
    assert quantizer.name == alias
    assert quantizers.get(quantizer) is quantizer
    restored = quantizers.get(quantizers.serialize(quantizer))
    assert restored == quantizer and restored is not quantizer
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(quantizer))
    assert restored == quantizer


def test_get_keeps_non_default_config():
    restored = quantizers.get(quantizers.serialize(SteSign(clip_value=0.25)))
    assert restored.clip_value == 0.25
    assert quantizers.get({"class_name": "swish_sign", "config": {"beta": 3.0}}).beta == 3.0
    assert quantizers.get(None) is None


def test_unknown_quantizer_name_is_a_clear_error():
    with pytest.raises(TfcompressError, match=r"unknown quantizer 'ste_sgn'.*approx_sign"):
        quantizers.get("ste_sgn")
    with pytest.raises(TfcompressError, match="not a quantizer"):
        quantizers.get(42)
    with pytest.raises(TfcompressError, match="clip_value must be positive"):
        SteSign(clip_value=0)


def test_weight_clip_constraint_alias_and_values():
    constraint = quantizers.get_constraint("weight_clip")
    assert isinstance(constraint, WeightClip)
    w = np.array([-3.0, -0.5, 0.0, 0.9, 7.0], dtype=np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(constraint(w)), np.float32([-1, -0.5, 0, 0.9, 1]))
    restored = keras.constraints.get(keras.constraints.serialize(WeightClip(0.5)))
    assert isinstance(restored, WeightClip) and restored.clip_value == 0.5
    assert isinstance(quantizers.get_constraint("non_neg"), keras.constraints.NonNeg)
    with pytest.raises(TfcompressError, match="unknown kernel constraint"):
        quantizers.get_constraint("weight_clp")
