"""Lowering of :class:`SharedConv2D` / :class:`SharedDense` to our ``TfcSparseDecode`` op + the builtin op.

The ``.tflite`` holds no float kernel: each layer contributes its Deep Compression streams
(:mod:`tfcompress.pruning.deep_compression`): the Huffman-coded relative positions and
shared-weight indices, the two code-length tables (one byte per symbol) and the float32
codebook. ``TfcSparseDecode`` decodes them once, when the op library's delegate is applied,
into a read-only constant tensor in the layout its consumer reads (``CONV_2D``:
``[C_out, kh, kw, C_in]``; ``FULLY_CONNECTED``: ``[C_out, C_in]``); XNNPACK, applied after
that delegate, sees static weights and takes the consumer like a float model's (without
XNNPACK the builtin kernels read the same constant). See ``converters/src/tflite/delegate.cc``.

Custom options: ``entries``, ``gap_bits`` (0: dense mode, no position stream), ``weight_bits``, ``rank``,
``dim0`` .. ``dim3``.
The composite's TensorFlow body returns the same kernel as a constant, so the traced graph
is correct where nothing fuses it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcompress.convert import register_lowering
from tfcompress.pruning.deep_compression import EncodedKernel, encode_indices
from tfcompress.pruning.layers import SharedConv2D, SharedDense, codebook_and_indices

DECODE_OP = "TfcSparseDecode"


def _implements(attrs: dict[str, int]) -> str:
    parts = [f'name: "{DECODE_OP}"', 'attr { key: "tfl_fusable_op" value { b: true } }']
    parts += [f'attr {{ key: "{key}" value {{ i: {int(value)} }} }}' for key, value in sorted(attrs.items())]
    return " ".join(parts)


def _eager(variable) -> np.ndarray:
    with tf.init_scope():
        return np.asarray(keras.ops.convert_to_numpy(variable), np.float32)


def encode_for_file(kernel: np.ndarray, weight_bits: int, gap_bits: int | None) -> EncodedKernel:
    """Deep Compression streams of a shared kernel already in its file layout (``gap_bits`` None: the smallest)."""
    codebook, indices = codebook_and_indices(kernel, weight_bits)
    return encode_indices(indices, codebook, weight_bits, gap_bits)


def _bytes(data: bytes) -> tf.Tensor:
    return tf.constant(np.frombuffer(data or b"\0", dtype=np.uint8))  # an empty stream still needs a tensor


def decoded_kernel(kernel_in_file_layout: np.ndarray, weight_bits: int, gap_bits: int | None) -> tf.Tensor:
    """The ``TfcSparseDecode`` composite producing ``kernel_in_file_layout`` from its streams."""
    encoded = encode_for_file(kernel_in_file_layout, weight_bits, gap_bits)
    shape = encoded.shape
    attrs = {
        "entries": encoded.gaps.count,
        "gap_bits": encoded.gap_bits,
        "weight_bits": weight_bits,
        "rank": len(shape),
        **{f"dim{i}": d for i, d in enumerate(shape)},
    }
    values = np.asarray(kernel_in_file_layout, np.float32)

    @tf.function(experimental_implements=_implements(attrs))
    def sparse_decode(gaps, indices, gap_lengths, index_lengths, codebook):
        return tf.constant(values)  # a body constant, not a capture: composites may not capture

    return sparse_decode(
        _bytes(encoded.gaps.data),
        _bytes(encoded.indices.data),
        tf.constant(encoded.gaps.lengths.astype(np.uint8)),
        tf.constant(encoded.indices.lengths.astype(np.uint8)),
        tf.constant(encoded.codebook),
    )


def kernel_in_file_layout(layer: SharedConv2D | SharedDense) -> np.ndarray:
    """The layer's kernel as the file stores it: OHWI for ``CONV_2D``, ``[C_out, C_in]`` for ``FULLY_CONNECTED``."""
    kernel = _eager(layer.kernel)
    return np.transpose(kernel, (3, 0, 1, 2)) if isinstance(layer, SharedConv2D) else kernel.T


def encoded_layer(layer: SharedConv2D | SharedDense) -> EncodedKernel:
    """The Deep Compression streams the file holds for ``layer`` (for size reports)."""
    return encode_for_file(kernel_in_file_layout(layer), layer.weight_bits, layer.gap_bits)


def lower_shared_conv2d(layer: SharedConv2D, inputs, *args, **kwargs):
    """``TfcSparseDecode`` (OHWI kernel, decoded once) feeding the builtin ``CONV_2D``."""
    ohwi = decoded_kernel(kernel_in_file_layout(layer), layer.weight_bits, layer.gap_bits)
    outputs = tf.nn.conv2d(
        tf.convert_to_tensor(inputs, tf.float32),
        tf.transpose(ohwi, (1, 2, 3, 0)),
        strides=layer.strides,
        padding=layer.padding.upper(),
        dilations=layer.dilation_rate,
    )
    if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, tf.constant(_eager(layer.bias)))
    return layer.activation(outputs)


def lower_shared_dense(layer: SharedDense, inputs, *args, **kwargs):
    """``TfcSparseDecode`` ([C_out, C_in] kernel) feeding the builtin ``FULLY_CONNECTED``."""
    weights = decoded_kernel(kernel_in_file_layout(layer), layer.weight_bits, layer.gap_bits)
    outputs = tf.matmul(tf.convert_to_tensor(inputs, tf.float32), weights, transpose_b=True)
    if layer.use_bias:
        outputs = outputs + tf.constant(_eager(layer.bias))
    return layer.activation(outputs)


register_lowering(SharedConv2D, lower_shared_conv2d, custom_op=DECODE_OP)
register_lowering(SharedDense, lower_shared_dense, custom_op=DECODE_OP)
