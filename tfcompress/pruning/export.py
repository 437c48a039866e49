"""Pruned models as ``.tflite`` files that are smaller as they stand, not only after gzip.

Two routes, both taken by :func:`tfcompress.convert.to_tflite`:

- TFLite-native sparse format (``sparse=None`` picks it for a model whose plain Conv/Dense
  kernels are at least half zeros; see :func:`tfcompress.convert.sparse_fraction`): the
  converter's ``EXPERIMENTAL_SPARSITY`` stores each sparse constant weight in TFLite's
  compressed sparse format (per dimension dense or CSR segments + indices, the smallest index
  type that fits) and a ``DENSIFY`` op rebuilds it once at Prepare. Stock runtime, no custom
  op; the values stay float32, so a nonzero costs 4 bytes + its index bytes: the file shrinks
  about ``1 / (density * 1.3..1.5)``. XNNPACK then runs the densified weights.
- Deep Compression in the file (:mod:`tfcompress.pruning.lowering`): shared-weight indices
  and relative positions Huffman-coded, decoded once by our ``TfcSparseDecode`` op when the
  op library's delegate is applied (into a constant that XNNPACK then takes, so it runs at
  the float model's speed): 25-50x smaller, needs ``libtfcompress_ops.so``.

Which one: the native route when the file must load in any TFLite runtime and 3-4x is
enough; Deep Compression when size matters most (downloads, flash) and our op library ships.
"""

from __future__ import annotations

import gzip


def gzip_size(data: bytes) -> int:
    """Bytes of ``data`` after ``gzip -9`` (how tfmot reports its gains)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
