"""Pruned models as ``.tflite`` files that are smaller as they stand, not only after gzip.

Two routes:

- :func:`to_sparse_tflite` (TFLite-native): the converter's ``EXPERIMENTAL_SPARSITY``
  stores each sparse constant weight in TFLite's compressed sparse format (per dimension
  dense or CSR segments + indices, the smallest index type that fits) and a ``DENSIFY`` op
  rebuilds it once at Prepare. Stock runtime, no custom op; the values stay float32, so a
  nonzero costs 4 bytes + its index bytes: the file shrinks about ``1 / (density * 1.3..1.5)``.
  XNNPACK then runs the densified weights (and has sparse kernels for 1x1 convolutions
  with an NHWC->NCHW layout when the model is built for it; not used by default).
- Deep Compression in the file (:mod:`tfcompress.pruning.lowering`): shared-weight indices
  and relative positions Huffman-coded, decoded once by our ``TfcSparseDecode`` op when the
  op library's delegate is applied (into a constant that XNNPACK then takes, so it runs at
  the float model's speed): 25-50x smaller, needs ``libtfcompress_ops.so``.

Which one: the native route when the file must load in any TFLite runtime and 3-4x is
enough; Deep Compression when size matters most (downloads, flash) and our op library ships.
"""

from __future__ import annotations

import gzip
import tempfile

import keras


def to_sparse_tflite(model: keras.Model) -> bytes:
    """Convert ``model`` (pruned, stripped) with ``EXPERIMENTAL_SPARSITY``; float32 weights stay exact."""
    import tensorflow as tf

    from tfcompress.convert.converter import _export_saved_model

    with tempfile.TemporaryDirectory() as saved_model:
        _export_saved_model(model, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.allow_custom_ops = True
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return converter.convert()


def gzip_size(data: bytes) -> int:
    """Bytes of ``data`` after ``gzip -9`` (how tfmot reports its gains)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
