"""The block layout of product quantization (Stock et al. 2020, "And the Bit Goes Down").

A kernel is viewed as a matrix of ``R = C_in * kh * kw`` rows and ``C_out`` columns, rows
ordered ``(C_in, kh, kw)`` as in PyTorch's ``(C_out, C_in, kh, kw)`` weights; each column is
cut into ``R / d`` contiguous blocks of ``d`` rows. So for a 3x3 conv ``d = 9`` is exactly
one input channel's kernel, ``d = 18`` two of them; for a 1x1 conv or a dense layer ``d``
rows are ``d`` consecutive input channels. Block ``b`` of column ``j`` is the subvector
``W[b*d:(b+1)*d, j]``; it is replaced by ``codebook[codes[b, j]]``.

Keras stores a conv kernel as ``(kh, kw, C_in, C_out)`` and a dense kernel as
``(C_in, C_out)``; the functions here move between those and the subvector array of
shape ``(R / d, C_out, d)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfcompress.errors import TfcompressError


def kernel_rows(kernel_shape: Sequence[int]) -> int:
    """``R = C_in * kh * kw`` (or ``C_in`` for a dense kernel): the rows cut into blocks."""
    return int(np.prod(kernel_shape[:-1]))


def check_block_size(kernel_shape: Sequence[int], block_size: int, layer_name: str) -> int:
    """Return the number of blocks ``R / d``.

    Raises:
        TfcompressError: ``block_size`` is not positive or does not divide ``R``.
    """
    rows = kernel_rows(kernel_shape)
    if block_size < 1 or rows % block_size:
        what = "C_in*kh*kw" if len(kernel_shape) == 4 else "C_in"
        raise TfcompressError(
            f"layer {layer_name!r}: block size {block_size} does not divide {what} = {rows} "
            f"(kernel shape {tuple(kernel_shape)})"
        )
    return rows // block_size


def fitting_block_size(rows: int, ceiling: int) -> int | None:
    """The largest ``d`` in ``[2, ceiling]`` that divides ``rows``; ``None`` when there is none.

    A preset's ``d`` is a ceiling: a 1x1 conv with ``C_in = 6`` (a squeeze-excitation expand
    in EfficientNet) gets ``d = 3`` instead of 4. ``d = 1`` would be scalar quantization, not
    product quantization, so a layer whose ``R`` has no divisor in range is left float.
    """
    for size in range(min(ceiling, rows), 1, -1):
        if rows % size == 0:
            return size
    return None


def kernel_to_subvectors(kernel: np.ndarray, block_size: int) -> np.ndarray:
    """Keras kernel -> subvectors of shape ``(R / d, C_out, d)``."""
    rows = np.transpose(kernel, (2, 0, 1, 3)) if kernel.ndim == 4 else kernel
    rows = rows.reshape(-1, kernel.shape[-1])
    blocks = rows.reshape(rows.shape[0] // block_size, block_size, rows.shape[1])
    return np.ascontiguousarray(np.transpose(blocks, (0, 2, 1)))


def subvectors_to_kernel(subvectors, kernel_shape: Sequence[int], ops=None):
    """Subvectors ``(R / d, C_out, d)`` -> the Keras kernel of ``kernel_shape``.

    ``ops`` is ``keras.ops`` to build the graph inside a layer, or ``None`` for numpy.
    """
    ops = ops or _NumpyOps
    blocks, out, size = subvectors.shape
    rows = ops.reshape(ops.transpose(subvectors, (0, 2, 1)), (blocks * size, out))
    if len(kernel_shape) == 2:
        return rows
    kh, kw, cin, cout = kernel_shape
    return ops.transpose(ops.reshape(rows, (cin, kh, kw, cout)), (1, 2, 0, 3))


def decode(codebook: np.ndarray, codes: np.ndarray, kernel_shape: Sequence[int]) -> np.ndarray:
    """The kernel that ``codebook[codes]`` stands for (numpy reference)."""
    return subvectors_to_kernel(codebook[codes], kernel_shape)


class _NumpyOps:
    reshape = staticmethod(np.reshape)
    transpose = staticmethod(np.transpose)
