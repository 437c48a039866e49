"""Lowering of :class:`PQConv2D` / :class:`PQDense` to the native ``TfcPQDecode`` / ``TfcPQDense`` ops.

The ``.tflite`` holds no decoded float kernel: each PQ layer contributes its codes,
bit-packed at ``ceil(log2 k)`` bits (:mod:`tfcompress.pq.packing`), and its codebook in
float16. Ops (custom options are the flexbuffer attributes listed):

``TfcPQDecode`` (conv): inputs ``packed codes uint8``, ``codebook float16 [k, d]``;
output the float32 kernel ``[C_out, kh, kw, C_in]`` (TFLite's filter layout). The op
library's delegate decodes it once, when it is applied, into a read-only constant tensor;
XNNPACK, applied after that delegate, sees a static filter and takes the ``CONV_2D`` that
consumes it as it would a float model's (without XNNPACK the builtin kernel reads the same
constant), and decoding costs nothing per inference.
Options: ``block_size``, ``n_centroids``, ``code_bits``, ``kernel_h``, ``kernel_w``,
``in_channels``, ``out_channels``.

``TfcPQDense``: inputs ``x float32 [..., C_in]``, ``packed codes``, ``codebook float16``,
``bias float32 [C_out]``; output ``float32 [..., C_out]``. Lookup-table kernel: per input
block ``b`` the ``k`` dot products ``T_b[c] = <x_b, C[c]>`` are computed once, then
``y[j] = sum_b T_b[codes[b, j]] + bias[j]``. Options: ``in_features``,
``out_features``, ``block_size``, ``n_centroids``, ``code_bits``, ``activation``
(``NONE``, ``RELU``, ``RELU6``; any other activation runs after the op).

A PQ dense layer becomes ``TfcPQDense`` only where the lookup table is expected to beat the
float layer (:func:`lookup_table_pays`); elsewhere its kernel is ``TfcPQDecode``d once into a
constant feeding a 1x1 ``CONV_2D`` that XNNPACK runs as fast as the float model's
FULLY_CONNECTED, so a PQ dense layer is never slower than float (the file stays as small; the
decoded kernel takes the float layer's memory at run time).

Each composite's body computes the same thing with TensorFlow ops, so the traced graph is
correct where nothing fuses it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcompress.convert import register_lowering
from tfcompress.pq.layers import PQConv2D, PQDense
from tfcompress.pq.packing import pack_codes
from tfcompress.pq.size import code_bits

DECODE_OP = "TfcPQDecode"
DENSE_OP = "TfcPQDense"
FUSED_ACTIVATIONS = {"linear": "NONE", "relu": "RELU", "relu6": "RELU6"}


def _implements(name: str, attrs: dict[str, int | str]) -> str:
    parts = [f'name: "{name}"', 'attr { key: "tfl_fusable_op" value { b: true } }']
    for key, value in sorted(attrs.items()):
        literal = f"i: {int(value)}" if isinstance(value, int) else f's: "{value}"'
        parts.append(f'attr {{ key: "{key}" value {{ {literal} }} }}')
    return " ".join(parts)


def _eager(variable, dtype) -> np.ndarray:
    with tf.init_scope():
        return np.asarray(keras.ops.convert_to_numpy(variable)).astype(dtype)


def _codes_tf(packed: tf.Tensor, bits: int, count: int) -> tf.Tensor:
    """TensorFlow inverse of :func:`tfcompress.pq.packing.pack_codes` (int32 ``[count]``)."""
    packed = tf.cast(packed, tf.int32)
    if bits == 8:
        return packed[:count]
    stream = tf.reshape(tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed[:, None], tf.range(8)), 1), [-1])
    stream = tf.reshape(stream[: count * bits], [count, bits])
    return tf.reduce_sum(tf.bitwise.left_shift(stream, tf.range(bits)), axis=1)


def _attrs(layer) -> dict[str, int]:
    return {
        "block_size": layer.block_size,
        "n_centroids": layer.n_centroids,
        "code_bits": code_bits(layer.n_centroids),
    }


def _activation(layer) -> tuple[str, object]:
    name = getattr(layer.activation, "__name__", "")
    if name in FUSED_ACTIVATIONS and getattr(keras.activations, name, None) is layer.activation:
        return FUSED_ACTIVATIONS[name], None
    return "NONE", layer.activation


def _fused(y: tf.Tensor, activation: str) -> tf.Tensor:
    if activation == "RELU":
        return tf.nn.relu(y)
    if activation == "RELU6":
        return tf.nn.relu6(y)
    return y


def _decoded_kernel(layer, kh: int, kw: int, cin: int, cout: int) -> tf.Tensor:
    """The layer's kernel, HWIO ``[kh, kw, C_in, C_out]``, from a ``TfcPQDecode`` composite."""
    n_blocks = cin * kh * kw // layer.block_size
    packed = pack_codes(_eager(layer.codes, np.int64), layer.n_centroids)
    codebook = _eager(layer.codebook, np.float16)
    attrs = {**_attrs(layer), "kernel_h": kh, "kernel_w": kw, "in_channels": cin, "out_channels": cout}
    bits = attrs["code_bits"]

    @tf.function(experimental_implements=_implements(DECODE_OP, attrs))
    def pq_decode(packed_codes, codebook):
        codes = tf.reshape(_codes_tf(packed_codes, bits, n_blocks * cout), [n_blocks, cout])
        subvectors = tf.gather(tf.cast(codebook, tf.float32), codes)  # [blocks, C_out, d]
        rows = tf.reshape(tf.transpose(subvectors, (1, 0, 2)), [cout, cin, kh, kw])
        return tf.transpose(rows, (0, 2, 3, 1))  # [C_out, kh, kw, C_in]

    return tf.transpose(pq_decode(tf.constant(packed), tf.constant(codebook)), (1, 2, 3, 0))


def lower_pq_conv2d(layer: PQConv2D, inputs, *args, **kwargs):
    """``TfcPQDecode`` (kernel decoded once) feeding the builtin ``CONV_2D``."""
    kernel = _decoded_kernel(layer, *layer.kernel_shape)
    outputs = tf.nn.conv2d(
        tf.convert_to_tensor(inputs, tf.float32),
        kernel,
        strides=layer.strides,
        padding=layer.padding.upper(),
        dilations=layer.dilation_rate,
    )
    if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, tf.constant(_eager(layer.bias, np.float32)))
    return layer.activation(outputs)


#: Below this many weights a dense layer takes microseconds either way: it keeps the lookup table.
SMALL_DENSE_WEIGHTS = 1 << 18
#: Float kernels larger than this are read from memory at every inference (not cache-resident).
CACHED_FLOAT_BYTES = 8 << 20


def lookup_table_pays(in_features: int, out_features: int, block_size: int, n_centroids: int) -> bool:
    """Whether ``TfcPQDense``'s lookup table is expected to be faster than a float FULLY_CONNECTED.

    Per input feature the table costs ``k`` multiply-adds and ``C_out / d`` lookups, each
    lookup-add about 10 multiply-adds of a cache-resident float layer (measured on AMD Zen 5,
    1024x1024); the float layer costs ``C_out`` multiply-adds, about 2.5x more when its
    kernel does not stay in cache (4096x4096: 64 MB read per inference). Measured there
    (``benchmarks/pq.py dense``): d = 8, k = 256 at 4096x4096 is 1.7x faster than float; every
    1024x1024 setting and d = 4 at 4096x4096 (k = 256 or the default 2048) are slower, so they
    are decoded instead. Small layers (fewer than :data:`SMALL_DENSE_WEIGHTS`) keep the table.
    """
    weights = in_features * out_features
    if weights < SMALL_DENSE_WEIGHTS:
        return True
    float_cost = out_features * (2.5 if 4 * weights > CACHED_FLOAT_BYTES else 1.0)
    return n_centroids + 10 * out_features / block_size < float_cost


def _lower_pq_dense_decoded(layer: PQDense, inputs) -> tf.Tensor:
    """The kernel decoded once (``TfcPQDecode``) feeding a 1x1 ``CONV_2D`` (rank-2 inputs): float speed."""
    cin, cout = layer.kernel_shape
    kernel = _decoded_kernel(layer, 1, 1, cin, cout)
    x = tf.reshape(tf.convert_to_tensor(inputs, tf.float32), [-1, 1, 1, cin])
    y = tf.reshape(tf.nn.conv2d(x, kernel, strides=1, padding="VALID"), [-1, cout])
    if layer.use_bias:
        y = tf.nn.bias_add(y, tf.constant(_eager(layer.bias, np.float32)))
    return layer.activation(y)


def lower_pq_dense(layer: PQDense, inputs, *args, **kwargs):
    """``TfcPQDense``, the lookup-table kernel on packed codes and a float16 codebook, where it
    pays (:func:`lookup_table_pays`) or the input has more than 2 dimensions; else the decoded
    kernel feeding a 1x1 ``CONV_2D``."""
    cin, cout = layer.kernel_shape
    if len(inputs.shape) == 2 and not lookup_table_pays(cin, cout, layer.block_size, layer.n_centroids):
        return _lower_pq_dense_decoded(layer, inputs)
    n_blocks = cin // layer.block_size
    packed = pack_codes(_eager(layer.codes, np.int64), layer.n_centroids)
    codebook = _eager(layer.codebook, np.float16)
    bias = _eager(layer.bias, np.float32) if layer.use_bias else np.zeros(cout, np.float32)
    fused, after = _activation(layer)
    attrs = {**_attrs(layer), "in_features": cin, "out_features": cout, "activation": fused}
    bits = attrs["code_bits"]

    @tf.function(experimental_implements=_implements(DENSE_OP, attrs))
    def pq_dense(x, packed_codes, codebook, bias):
        codes = tf.reshape(_codes_tf(packed_codes, bits, n_blocks * cout), [n_blocks, cout])
        subvectors = tf.gather(tf.cast(codebook, tf.float32), codes)  # [blocks, C_out, d]
        kernel = tf.reshape(tf.transpose(subvectors, (0, 2, 1)), [cin, cout])
        y = tf.tensordot(x, kernel, axes=[[x.shape.rank - 1], [0]])
        return _fused(y + bias, fused)

    outputs = pq_dense(
        tf.convert_to_tensor(inputs, tf.float32), tf.constant(packed), tf.constant(codebook), tf.constant(bias)
    )
    return outputs if after is None else after(outputs)


register_lowering(PQConv2D, lower_pq_conv2d, custom_op=DECODE_OP)
register_lowering(PQDense, lower_pq_dense, custom_op=DENSE_OP)
