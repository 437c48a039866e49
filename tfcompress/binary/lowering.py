"""Lowering of ``BinaryConv2D`` / ``BinaryDense`` to the native ``TfcBinaryConv2D`` / ``TfcBinaryDense`` ops.

With sign quantizers on both the input and the kernel, a binary layer is

    y = act(alpha * conv(sign(x), sign(W)) + b)

(``alpha`` = ``mean|W|`` per output channel for ``magnitude_aware_sign``, else 1;
Rastegari et al. 2016, "XNOR-Net"). The rule emits one ``CUSTOM`` op per layer through the
converter's composite route: a ``tf.function`` with
``experimental_implements='name: "TfcBinaryConv2D" attr {key: "tfl_fusable_op" ...}'``
whose attributes (strides, dilation, padding, pad value, activation, input channels)
become the op's flexbuffer options, and whose constant inputs stay tensors of the op:

==  =================  ==============================================================
0   x                  float32 activations (the op binarizes them: bit = not x >= 0)
1   packed weights     int32 ``[C_out, K_h, K_w, ceil(C_in/32)]`` (dense: ``[C_out, words]``),
                       bit set = negative weight (:func:`tfcompress.native.pack_signs`): 32x
                       smaller than float
2   multiplier         float32 ``[C_out]`` (alpha, or ones)
3   bias               float32 ``[C_out]`` (zeros without bias)
==  =================  ==============================================================

The function body computes the same thing with TensorFlow ops (unpack, sign, conv), so
the traced graph stays correct where no converter fuses it. ReLU and ReLU6 are fused into
the op; any other activation runs after it as ordinary TFLite ops. A layer that is not
binary on both sides (``input_quantizer=None``, a non-sign quantizer, grouped conv) keeps
its float graph.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcompress.binary.bitpacked import bitpack_activations
from tfcompress.binary.layers import BinaryConv2D, BinaryDense
from tfcompress.convert import register_lowering
from tfcompress.convert.lowering import register_flatbuffer_pass
from tfcompress.errors import UnsupportedLayerError
from tfcompress.native import pack_signs

CONV_OP = "TfcBinaryConv2D"
DENSE_OP = "TfcBinaryDense"
SIGN_INPUT_QUANTIZERS = frozenset({"ste_sign", "approx_sign", "swish_sign"})
SIGN_KERNEL_QUANTIZERS = SIGN_INPUT_QUANTIZERS | {"magnitude_aware_sign"}
FUSED_ACTIVATIONS = {"linear": "NONE", "relu": "RELU", "relu6": "RELU6"}


def is_binary(layer: keras.layers.Layer) -> bool:
    """True when both quantizers are sign quantizers, so the layer is an XNOR + popcount op."""
    input_quantizer = getattr(layer, "input_quantizer", None)
    kernel_quantizer = getattr(layer, "kernel_quantizer", None)
    return (
        input_quantizer is not None
        and kernel_quantizer is not None
        and input_quantizer.name in SIGN_INPUT_QUANTIZERS
        and kernel_quantizer.name in SIGN_KERNEL_QUANTIZERS
    )


def _implements(name: str, attrs: dict[str, int | str]) -> str:
    """The ``experimental_implements`` text: the op name, ``tfl_fusable_op`` and the attributes."""
    parts = [f'name: "{name}"', 'attr { key: "tfl_fusable_op" value { b: true } }']
    for key, value in sorted(attrs.items()):
        literal = f"i: {int(value)}" if isinstance(value, int) else f's: "{value}"'
        parts.append(f'attr {{ key: "{key}" value {{ {literal} }} }}')
    return " ".join(parts)


def _eager_value(variable) -> np.ndarray:
    """A weight's current value as float32 numpy, also while a ``tf.function`` is being traced."""
    with tf.init_scope():
        return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _output_transform(layer: keras.layers.Layer, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel ``multiplier`` (XNOR-Net's alpha, or ones) and ``bias``."""
    out_channels = kernel.shape[-1]
    if layer.kernel_quantizer.name == "magnitude_aware_sign":
        multiplier = np.mean(np.abs(kernel), axis=tuple(range(kernel.ndim - 1)))
    else:
        multiplier = np.ones(out_channels)
    bias = _eager_value(layer.bias) if layer.use_bias else np.zeros(out_channels)
    return multiplier.astype(np.float32), np.asarray(bias, dtype=np.float32)


def _activation(layer: keras.layers.Layer) -> tuple[str, object]:
    """(fused activation name, activation to apply after the op or None)."""
    name = getattr(layer.activation, "__name__", "")
    if name in FUSED_ACTIVATIONS and getattr(keras.activations, name, None) is layer.activation:
        return FUSED_ACTIVATIONS[name], None
    return "NONE", layer.activation


def _signs_from_packed(packed: tf.Tensor, channels: int) -> tf.Tensor:
    """TensorFlow inverse of :func:`pack_signs`: ``+-1.0`` along a new last axis of ``channels``."""
    shifts = tf.range(32, dtype=tf.int32)
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed[..., None], shifts), 1)
    bits = tf.reshape(bits, [*packed.shape[:-1], packed.shape[-1] * 32])[..., :channels]
    return 1.0 - 2.0 * tf.cast(bits, tf.float32)


def _sign(x: tf.Tensor) -> tf.Tensor:
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def _fused(y: tf.Tensor, activation: str) -> tf.Tensor:
    if activation == "RELU":
        return tf.nn.relu(y)
    if activation == "RELU6":
        return tf.nn.relu6(y)
    return y


def lower_binary_conv2d(layer: BinaryConv2D, inputs, *args, **kwargs):
    """``TfcBinaryConv2D`` for a binary ``BinaryConv2D``; its float graph otherwise."""
    if not is_binary(layer) or layer.groups != 1:
        return type(layer).call(layer, inputs, *args, **kwargs)
    if layer.data_format != "channels_last":
        raise UnsupportedLayerError(f"{layer.name}: binary conv lowering needs data_format='channels_last'")
    kernel = _eager_value(layer.kernel)  # [K_h, K_w, C_in, C_out]
    in_channels = kernel.shape[2]
    packed = pack_signs(np.transpose(kernel, (3, 0, 1, 2)))
    multiplier, bias = _output_transform(layer, kernel)
    fused, after = _activation(layer)
    padding = layer.padding.upper()
    pad_value = 1 if layer.one_padding else 0
    strides, dilation = tuple(layer.strides), tuple(layer.dilation_rate)
    attrs = {
        "in_channels": int(in_channels),
        "stride_height": strides[0],
        "stride_width": strides[1],
        "dilation_height": dilation[0],
        "dilation_width": dilation[1],
        "padding": padding,
        "pad_value": pad_value,
        "activation": fused,
    }

    @tf.function(experimental_implements=_implements(CONV_OP, attrs))
    def binary_conv2d(x, packed_weights, multiplier, bias):
        w = tf.transpose(_signs_from_packed(packed_weights, in_channels), (1, 2, 3, 0))
        x = _sign(x)
        conv_padding = padding
        if pad_value == 1:
            pads = [
                layer_padding(x.shape[axis], layer.kernel_size[i], strides[i], dilation[i])
                for i, axis in enumerate((1, 2))
            ]
            x = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], constant_values=1.0)
            conv_padding = "VALID"
        y = tf.nn.conv2d(x, w, strides=strides, padding=conv_padding, dilations=dilation)
        return _fused(y * multiplier + bias, fused)

    outputs = binary_conv2d(
        tf.convert_to_tensor(inputs, tf.float32), tf.constant(packed), tf.constant(multiplier), tf.constant(bias)
    )
    return outputs if after is None else after(outputs)


def layer_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's ``"same"`` padding (before, after): ``total = max((ceil(size/stride) - 1) * stride
    + (kernel - 1) * dilation + 1 - size, 0)``, the smaller half before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def lower_binary_dense(layer: BinaryDense, inputs, *args, **kwargs):
    """``TfcBinaryDense`` for a binary ``BinaryDense``; its float graph otherwise."""
    if not is_binary(layer):
        return type(layer).call(layer, inputs, *args, **kwargs)
    kernel = _eager_value(layer.kernel)  # [C_in, C_out]
    in_channels = kernel.shape[0]
    packed = pack_signs(kernel.T)
    multiplier, bias = _output_transform(layer, kernel)
    fused, after = _activation(layer)
    attrs = {"in_channels": int(in_channels), "activation": fused}

    @tf.function(experimental_implements=_implements(DENSE_OP, attrs))
    def binary_dense(x, packed_weights, multiplier, bias):
        w = tf.transpose(_signs_from_packed(packed_weights, in_channels))
        y = tf.tensordot(_sign(x), w, axes=[[x.shape.rank - 1], [0]])
        return _fused(y * multiplier + bias, fused)

    outputs = binary_dense(
        tf.convert_to_tensor(inputs, tf.float32), tf.constant(packed), tf.constant(multiplier), tf.constant(bias)
    )
    return outputs if after is None else after(outputs)


register_lowering(BinaryConv2D, lower_binary_conv2d, custom_op=CONV_OP)
register_lowering(BinaryDense, lower_binary_dense, custom_op=DENSE_OP)
register_flatbuffer_pass(bitpack_activations)
