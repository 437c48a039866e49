"""Canonical Huffman coding (Huffman 1952) of small-alphabet symbol streams, in pure Python/numpy.

A code is fully described by one length per symbol (0: unused). Canonical codes are
assigned in order of (length, symbol): the first code of length ``L`` is
``(first[L-1] + count[L-1]) << 1``, so a decoder needs only the lengths, and walks the bit
stream one bit at a time comparing ``code - first[L] < count[L]`` (the same loop the
native decode op runs). Bits are written most significant first within each byte.

Code lengths are limited to :data:`MAX_CODE_LENGTH` bits by flattening the counts and
rebuilding when a very skewed histogram would produce longer codes.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from tfcompress.errors import TfcompressError

MAX_CODE_LENGTH = 24


def code_lengths(counts: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Huffman code length of each symbol from its count (0 for symbols that never occur).

    A single used symbol gets length 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), dtype=np.uint8)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    weights = counts.copy()
    while True:
        heap = [(int(weights[s]), int(s), [int(s)]) for s in used]
        heapq.heapify(heap)
        depth = np.zeros(len(counts), dtype=np.int64)
        while len(heap) > 1:
            w1, t1, s1 = heapq.heappop(heap)
            w2, t2, s2 = heapq.heappop(heap)
            merged = s1 + s2
            depth[merged] += 1
            heapq.heappush(heap, (w1 + w2, min(t1, t2), merged))
        if depth.max() <= max_length:
            lengths[used] = depth[used]
            return lengths
        weights[used] = np.maximum(weights[used] >> 1, 1)  # flatten the histogram and retry


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code (as an integer, ``lengths[s]`` bits) of each symbol."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    code = 0
    previous = 0
    for symbol in sorted(np.flatnonzero(lengths).tolist(), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous
        previous = int(lengths[symbol])
        codes[symbol] = code
        code += 1
    return codes


@dataclass
class HuffmanStream:
    """A Huffman-coded stream: the code lengths, the packed bits, and the symbol count."""

    lengths: np.ndarray  # uint8 [alphabet]
    data: bytes
    count: int

    @property
    def nbytes(self) -> int:
        """Bytes on disk: the packed bits plus one byte per code length."""
        return len(self.data) + len(self.lengths)


def encode(symbols: np.ndarray, alphabet: int) -> HuffmanStream:
    """Huffman-code ``symbols`` (ints in ``[0, alphabet)``).

    Raises:
        TfcompressError: a symbol outside the alphabet.
    """
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise TfcompressError(f"Huffman symbols must be in [0, {alphabet}), got [{symbols.min()}, {symbols.max()}]")
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    codes = canonical_codes(lengths)
    sym_lengths = lengths[symbols].astype(np.int64)
    total_bits = int(sym_lengths.sum())
    # Expand every code into its bits (MSB first) with vector ops.
    max_len = int(sym_lengths.max()) if symbols.size else 0
    shifts = np.arange(max_len - 1, -1, -1, dtype=np.int64)
    bit_matrix = (codes[symbols][:, None] >> shifts[None, :]) & 1  # right-aligned in max_len bits
    valid = shifts[None, :] < sym_lengths[:, None]
    bits = bit_matrix[valid].astype(np.uint8)
    assert bits.size == total_bits
    return HuffmanStream(lengths=lengths, data=np.packbits(bits).tobytes(), count=int(symbols.size))


def decode(stream: HuffmanStream) -> np.ndarray:
    """The symbols of ``stream`` (int64), by the canonical first-code / count walk.

    Raises:
        TfcompressError: the bits end early or hold a code that is not in the table.
    """
    lengths = np.asarray(stream.lengths, dtype=np.int64)
    max_len = int(lengths.max()) if lengths.size else 0
    count = np.bincount(lengths, minlength=max_len + 1)
    count[0] = 0
    order = sorted(np.flatnonzero(lengths).tolist(), key=lambda s: (lengths[s], s))
    first = np.zeros(max_len + 2, dtype=np.int64)
    offset = np.zeros(max_len + 2, dtype=np.int64)
    code = index = 0
    for length in range(1, max_len + 1):
        code = (code + (count[length - 1] if length > 1 else 0)) << 1 if length > 1 else 0
        first[length] = code
        offset[length] = index
        index += count[length]
    bits = np.unpackbits(np.frombuffer(stream.data, dtype=np.uint8)).tolist()
    out = np.empty(stream.count, dtype=np.int64)
    position = 0
    for i in range(stream.count):
        code = 0
        for length in range(1, max_len + 1):
            if position >= len(bits):
                raise TfcompressError("Huffman stream ends in the middle of a code")
            code = (code << 1) | bits[position]
            position += 1
            if code - first[length] < count[length]:
                out[i] = order[offset[length] + code - first[length]]
                break
        else:
            raise TfcompressError("Huffman stream holds a code that is not in its table")
    return out
