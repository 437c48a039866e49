"""Bit-packing of PQ codes: ``ceil(log2 k)`` bits per code, as the ``.tflite`` stores them.

Codes are taken in the order of ``codes.ravel()`` (C order of ``(R / d, C_out)``: all
output columns of block 0, then block 1, ...), code ``i`` occupies bits
``[i*b, (i+1)*b)`` of a little-endian bit stream (bit 0 of byte 0 first, least
significant bit of the code first), and the stream is padded with zero bits to whole bytes.
With ``b = 8`` the packed bytes are the codes themselves.
"""

from __future__ import annotations

import numpy as np

from tfcompress.pq.size import code_bits


def pack_codes(codes: np.ndarray, n_centroids: int) -> np.ndarray:
    """``uint8`` bytes holding ``codes.ravel()`` at ``ceil(log2 n_centroids)`` bits each."""
    bits = code_bits(n_centroids)
    flat = np.asarray(codes, dtype=np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= n_centroids):
        raise ValueError(f"codes must lie in [0, {n_centroids})")
    if bits == 8:
        return flat.astype(np.uint8)
    stream = ((flat[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel()
    return np.packbits(stream, bitorder="little")


def unpack_codes(packed: np.ndarray, n_centroids: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``count`` codes as int32."""
    bits = code_bits(n_centroids)
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 8:
        return packed[:count].astype(np.int32)
    stream = np.unpackbits(packed, bitorder="little")[: count * bits].reshape(count, bits)
    return (stream.astype(np.int32) << np.arange(bits)).sum(axis=1).astype(np.int32)
