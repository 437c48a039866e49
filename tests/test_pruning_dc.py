"""Deep Compression: Huffman round trip, sparse relative indexing with fillers, weight sharing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.pruning import huffman
from tfcompress.pruning.deep_compression import (
    decode_kernel,
    dense_from_entries,
    encode_kernel,
    share_weights,
    shared_kernel,
    size_report,
    sparse_entries,
)
from tfcompress.pruning.masks import magnitude_mask


@pytest.mark.parametrize(
    "symbols",
    [
        np.minimum(np.random.default_rng(0).geometric(0.2, 3000) - 1, 31),  # skewed
        np.random.default_rng(1).integers(0, 32, 500),  # flat
        np.full(17, 5),  # one symbol
        np.zeros(0, np.int64),  # empty
    ],
)
def test_huffman_round_trip_is_exact(symbols):
    stream = huffman.encode(symbols, 32)
    np.testing.assert_array_equal(huffman.decode(stream), symbols)
    if len(symbols) > 100:
        counts = np.bincount(symbols, minlength=32)
        entropy_bits = -(counts[counts > 0] * np.log2(counts[counts > 0] / len(symbols))).sum()
        assert entropy_bits / 8 <= len(stream.data) <= entropy_bits / 8 + len(symbols) / 8 + 1


def test_huffman_code_is_prefix_free_and_canonical():
    lengths = huffman.code_lengths(np.array([50, 20, 20, 5, 5, 0]))
    codes = huffman.canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths, strict=True) if n]
    assert all(not b.startswith(a) for a in words for b in words if a != b)
    assert lengths[5] == 0 and lengths[0] == min(lengths[:5])
    assert sum(2.0 ** -int(n) for n in lengths if n) == pytest.approx(1.0)  # Kraft equality


def test_huffman_rejects_bad_symbols_and_truncated_streams():
    with pytest.raises(TfcompressError, match="must be in"):
        huffman.encode(np.array([0, 40]), 32)
    stream = huffman.encode(np.array([0, 1, 2, 3] * 10), 4)
    stream.count += 50
    with pytest.raises(TfcompressError, match="ends in the middle"):
        huffman.decode(stream)


def test_sparse_gaps_use_filler_zeros_when_they_overflow():
    flat = np.zeros(100, np.int64)
    flat[[0, 3, 40, 99]] = [7, 1, 2, 3]
    gaps, entries = sparse_entries(flat, gap_bits=3)
    # 36 zeros between 3 and 40: fillers of 7 zeros + their own slot (8 each) cover 32, then gap 4
    assert gaps.tolist() == [0, 2, 7, 7, 7, 7, 4, 7, 7, 7, 7, 7, 7, 7, 2]
    assert entries.tolist() == [7, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]
    np.testing.assert_array_equal(dense_from_entries(gaps, entries, 100), flat)


def test_weight_sharing_keeps_zeros_and_uses_at_most_2_to_the_bits_minus_1_values():
    kernel = np.random.default_rng(2).normal(size=(3, 3, 16, 8)).astype(np.float32)
    kernel *= magnitude_mask(kernel, 0.8)
    codebook, indices = share_weights(kernel, 4)
    shared = codebook[indices]
    assert codebook[0] == 0 and ((shared == 0) == (kernel == 0)).all()
    assert len(np.unique(shared[shared != 0])) <= 15
    assert np.abs(shared - kernel).max() < 0.25 * np.abs(kernel).max()


def test_deep_compression_round_trip_is_exact_and_small():
    kernel = np.random.default_rng(3).normal(size=(3, 3, 32, 32)).astype(np.float32)
    kernel *= magnitude_mask(kernel, 0.9)
    encoded = encode_kernel(kernel, bits=5)
    decoded = decode_kernel(encoded)
    np.testing.assert_array_equal(decoded, shared_kernel(kernel, 5))
    assert decoded.dtype == np.float32 and decoded.shape == kernel.shape
    report = size_report({"conv": encoded})
    assert report[-1]["compressed_bytes"] == encoded.nbytes
    assert report[-1]["ratio"] > 20  # 10% nonzeros, ~5 bits of index + ~4 of position each
    assert report[0]["nonzero_fraction"] == pytest.approx(0.1, abs=0.005)


def test_bad_bit_widths_are_refused():
    with pytest.raises(TfcompressError, match="bits must be in"):
        share_weights(np.ones((2, 2)), 9)
    with pytest.raises(TfcompressError, match="gap bits"):
        encode_kernel(np.ones((2, 2)), 4, gap_bits=9)
    with pytest.raises(TfcompressError, match="gap bits"):
        encode_kernel(np.ones((2, 2)), 4, gap_bits=-1)


def _kernel_with_zeros(zero_fraction: float, shape=(7, 3, 3, 13), seed=0) -> np.ndarray:
    kernel = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return kernel * magnitude_mask(kernel, zero_fraction) if zero_fraction else kernel


@pytest.mark.parametrize("zero_fraction", [0.0, 0.3, 0.97])
def test_dense_mode_round_trip_is_exact_and_stores_no_positions(zero_fraction):
    kernel = _kernel_with_zeros(zero_fraction)
    encoded = encode_kernel(kernel, 5, gap_bits=0)
    assert encoded.gap_bits == 0 and encoded.gaps.data == b"" and encoded.gaps.count == kernel.size
    np.testing.assert_array_equal(decode_kernel(encoded), shared_kernel(kernel, 5))
    assert encoded.nonzeros == np.count_nonzero(kernel)


def test_dense_mode_refuses_an_entry_count_other_than_the_kernel_size():
    encoded = encode_kernel(_kernel_with_zeros(0.0), 4, gap_bits=0)
    truncated = huffman.encode(huffman.decode(encoded.indices)[:-1], 16)
    with pytest.raises(TfcompressError, match="one entry per element"):
        decode_kernel(dataclasses.replace(encoded, indices=truncated))


@pytest.mark.parametrize(("zero_fraction", "dense_expected"), [(0.0, True), (0.2, True), (0.95, False)])
def test_auto_gap_bits_picks_the_smallest_encoding(zero_fraction, dense_expected):
    kernel = _kernel_with_zeros(zero_fraction, shape=(32, 3, 3, 24))
    every = {bits: encode_kernel(kernel, 5, gap_bits=bits) for bits in range(9)}
    chosen = encode_kernel(kernel, 5, gap_bits=None)
    assert chosen.nbytes == min(encoded.nbytes for encoded in every.values())
    assert (chosen.gap_bits == 0) == dense_expected
    np.testing.assert_array_equal(decode_kernel(chosen), shared_kernel(kernel, 5))
    if zero_fraction == 0:  # no zeros: the position stream costs 1 bit per weight, dense mode none
        assert every[4].nbytes - chosen.nbytes >= kernel.size / 8
