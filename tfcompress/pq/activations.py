"""Gram matrices ``G = x~^T x~`` of a layer's input activations, cut into PQ blocks.

For a conv, ``x~`` is the im2col matrix of the layer's input (one row per output
position, columns ordered ``(C_in, kh, kw)`` like the kernel rows of
:mod:`tfcompress.pq.layout`); for a dense layer it is the input itself. Its columns are cut
into the same blocks of ``d`` as the kernel rows and the blocks are stacked, so ``G`` is
``d x d`` and shared by all subvectors of the layer (Stock et al. 2020, eq. 3). Only ``G``
is kept: a batch is patched, reduced to ``d x d`` and dropped.
"""

from __future__ import annotations

import numpy as np


def _block_rows(patches, block_size: int):
    import tensorflow as tf

    return tf.reshape(patches, (-1, block_size))


def conv_input_gram(inputs, layer, block_size: int) -> np.ndarray:
    """``G`` for a ``Conv2D`` / ``PQConv2D``-like ``layer`` from a batch of its inputs ``(N, H, W, C_in)``."""
    import tensorflow as tf

    kh, kw = layer.kernel_size
    strides = layer.strides if isinstance(layer.strides, tuple | list) else (layer.strides,) * 2
    rates = layer.dilation_rate if isinstance(layer.dilation_rate, tuple | list) else (layer.dilation_rate,) * 2
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    channels = int(inputs.shape[-1])
    patches = tf.image.extract_patches(
        inputs,
        sizes=[1, kh, kw, 1],
        strides=[1, *strides, 1],
        rates=[1, *rates, 1],
        padding=layer.padding.upper(),
    )
    # extract_patches orders a patch (kh, kw, C_in); the kernel rows are (C_in, kh, kw).
    patches = tf.reshape(patches, (-1, kh, kw, channels))
    patches = tf.transpose(patches, (0, 3, 1, 2))
    rows = _block_rows(patches, block_size)
    return tf.matmul(rows, rows, transpose_a=True).numpy().astype(np.float64)


def dense_input_gram(inputs, block_size: int) -> np.ndarray:
    """``G`` for a dense layer from a batch of its inputs ``(..., C_in)``."""
    import tensorflow as tf

    rows = _block_rows(tf.convert_to_tensor(inputs, tf.float32), block_size)
    return tf.matmul(rows, rows, transpose_a=True).numpy().astype(np.float64)
