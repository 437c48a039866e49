"""Deep Compression (Han et al., ICLR 2016): prune -> weight sharing -> Huffman coding, per layer.

1. Pruning (:func:`tfcompress.pruning.prune`) leaves a sparse kernel.
2. Weight sharing: the nonzero weights of a layer are clustered by 1-D k-means with the
   paper's linear initialisation (centroids evenly spaced between min and max), into
   ``2**bits - 1`` shared values; index 0 is reserved for the value 0 (filler zeros).
   ``bits`` = 8 for convolutions and 5 for dense layers by default.
3. Relative sparse indexing: the kernel (flattened in the layout the file needs) is stored
   as pairs ``(gap, index)``, ``gap`` the number of zeros skipped before the entry, with
   ``gap_bits`` bits; a gap larger than ``2**gap_bits - 1`` is bridged by filler entries
   ``(2**gap_bits - 1, 0)`` that stand for one more zero each.
4. Huffman coding (:mod:`tfcompress.pruning.huffman`) of the gap stream and of the index
   stream, each with its own canonical table.

Decoding: ``position += gap + 1; w[position] = codebook[index]`` for every entry, starting
at position -1 (fillers write a 0). Round trip exact: decoding returns the shared-weight
kernel bit for bit.

Dense mode (``gap_bits = 0``, our addition to the paper's format): every element is an entry,
a zero is coded as index 0 like any other index, and no gap stream is stored. A Huffman code
spends at least one bit per symbol, so for a kernel with few zeros the gap stream costs about a
bit per weight and buys nothing; dense mode drops it (zeros then cost ``-log2 p(0)`` bits each in
the index stream). ``gap_bits=None`` (:data:`GAP_BITS_AUTO`, the default of the layers) picks,
per kernel, whichever of dense mode and gap widths 1..8 gives the fewest bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.pruning import huffman

CONV_BITS = 8
DENSE_BITS = 5
GAP_BITS = 4
GAP_BITS_AUTO = None  # per kernel: the smallest of dense mode (0) and gap widths 1..8
GAP_BITS_CHOICES = tuple(range(0, 9))


def check_gap_bits(gap_bits: int | None) -> None:
    """Raise a clear error unless ``gap_bits`` is None (auto), 0 (dense mode) or in [1, 8]."""
    if gap_bits is not None and gap_bits not in GAP_BITS_CHOICES:
        raise TfcompressError(f"gap bits must be in [0, 8] (0: dense mode) or None (auto), got {gap_bits}")


def share_weights(kernel: np.ndarray, bits: int, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the nonzero weights into ``2**bits - 1`` shared values (1-D k-means, linear init).

    Returns:
        ``(codebook float32 [2**bits], indices int [kernel.shape])``: ``codebook[0] = 0``
        and ``codebook[indices]`` is the shared-weight kernel (0 where the kernel is 0).

    Raises:
        TfcompressError: ``bits`` outside [1, 8].
    """
    from sklearn.cluster import KMeans

    if not 1 <= bits <= 8:
        raise TfcompressError(f"weight-sharing bits must be in [1, 8], got {bits}")
    kernel = np.asarray(kernel, np.float32)
    flat = kernel.ravel()
    nonzero = np.flatnonzero(flat)
    codebook = np.zeros(2**bits, np.float32)
    indices = np.zeros(flat.size, np.int64)
    if nonzero.size == 0:
        return codebook, indices.reshape(kernel.shape)
    values = flat[nonzero].astype(np.float64)[:, None]
    clusters = min(2**bits - 1, len(np.unique(values)))
    init = np.linspace(values.min(), values.max(), clusters)[:, None]
    kmeans = KMeans(n_clusters=clusters, init=init, n_init=1, max_iter=iterations, random_state=0).fit(values)
    centroids = kmeans.cluster_centers_.ravel().astype(np.float32)
    labels = kmeans.labels_
    # A centroid that rounds to exactly 0 in float32 would read back as a pruned weight: nudge it.
    tiny = np.finfo(np.float32).tiny
    centroids[centroids == 0] = tiny
    codebook[1 : clusters + 1] = centroids
    indices[nonzero] = labels + 1
    return codebook, indices.reshape(kernel.shape)


def sparse_entries(indices: np.ndarray, gap_bits: int = GAP_BITS) -> tuple[np.ndarray, np.ndarray]:
    """``(gaps, entries)`` of the relative sparse format, filler zeros included (see module doc)."""
    flat = np.asarray(indices).ravel()
    positions = np.flatnonzero(flat)
    max_gap = 2**gap_bits - 1
    raw_gaps = np.diff(np.concatenate([[-1], positions])) - 1
    fillers = raw_gaps // (max_gap + 1)  # each filler consumes max_gap zeros + its own slot
    total = len(positions) + int(fillers.sum())
    gaps = np.full(total, max_gap, dtype=np.int64)
    entries = np.zeros(total, dtype=np.int64)
    ends = np.cumsum(fillers + 1) - 1  # slot of each real entry
    gaps[ends] = raw_gaps - fillers * (max_gap + 1)
    entries[ends] = flat[positions]
    return gaps, entries


def dense_from_entries(gaps: np.ndarray, entries: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`sparse_entries`: the flat index array of length ``size``."""
    positions = np.cumsum(np.asarray(gaps, np.int64) + 1) - 1
    if len(positions) and positions[-1] >= size:
        raise TfcompressError(f"sparse entries run past the end of a {size}-element kernel")
    flat = np.zeros(size, np.int64)
    flat[positions] = entries
    return flat


@dataclass
class EncodedKernel:
    """One kernel in Deep Compression form."""

    shape: tuple[int, ...]
    codebook: np.ndarray  # float32 [2**bits], codebook[0] = 0
    gaps: huffman.HuffmanStream
    indices: huffman.HuffmanStream
    bits: int
    gap_bits: int
    nonzeros: int

    @property
    def nbytes(self) -> int:
        """Bytes of the compressed kernel: both Huffman streams with their tables, and the codebook."""
        return self.gaps.nbytes + self.indices.nbytes + self.codebook.nbytes

    @property
    def dense_nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4


def encode_kernel(
    kernel: np.ndarray, bits: int, gap_bits: int | None = GAP_BITS, iterations: int = 30
) -> EncodedKernel:
    """Weight-share and Huffman-code a (pruned) kernel, flattened in C order.

    Raises:
        TfcompressError: ``bits`` outside [1, 8] or ``gap_bits`` not None / in [0, 8].
    """
    check_gap_bits(gap_bits)
    codebook, indices = share_weights(kernel, bits, iterations)
    return encode_indices(indices, codebook, bits, gap_bits)


def encode_indices(
    indices: np.ndarray, codebook: np.ndarray, bits: int, gap_bits: int | None = GAP_BITS
) -> EncodedKernel:
    """Huffman-code an already shared kernel given as ``codebook[indices]`` (index 0 = zero).

    ``gap_bits=0`` is dense mode, ``None`` the smallest of every choice (see module doc).
    """
    check_gap_bits(gap_bits)
    if gap_bits is None:
        candidates = (encode_indices(indices, codebook, bits, choice) for choice in GAP_BITS_CHOICES)
        return min(candidates, key=lambda encoded: encoded.nbytes)
    flat = np.asarray(indices).ravel()
    if gap_bits == 0:
        gaps = huffman.HuffmanStream(lengths=np.zeros(1, np.uint8), data=b"", count=flat.size)
        entries = flat
    else:
        gap_values, entries = sparse_entries(flat, gap_bits)
        gaps = huffman.encode(gap_values, 2**gap_bits)
    return EncodedKernel(
        shape=tuple(np.shape(indices)),
        codebook=np.asarray(codebook, np.float32),
        gaps=gaps,
        indices=huffman.encode(entries, 2**bits),
        bits=bits,
        gap_bits=gap_bits,
        nonzeros=int(np.count_nonzero(flat)),
    )


def decode_kernel(encoded: EncodedKernel) -> np.ndarray:
    """The shared-weight kernel (float32, ``encoded.shape``) from its compressed form.

    Raises:
        TfcompressError: malformed streams, or a dense-mode entry count that is not the kernel size.
    """
    size = int(np.prod(encoded.shape))
    indices = huffman.decode(encoded.indices)
    if encoded.gap_bits == 0:
        if len(indices) != size:
            raise TfcompressError(f"dense mode needs one entry per element: {len(indices)} entries, {size} elements")
        flat = indices
    else:
        flat = dense_from_entries(huffman.decode(encoded.gaps), indices, size)
    return encoded.codebook[flat].reshape(encoded.shape)


def shared_kernel(kernel: np.ndarray, bits: int, iterations: int = 30) -> np.ndarray:
    """The kernel with every nonzero weight replaced by its shared value (what the file decodes to)."""
    codebook, indices = share_weights(kernel, bits, iterations)
    return codebook[indices]


def size_report(encoded: dict[str, EncodedKernel]) -> list[dict]:
    """Per-layer rows: dense bytes, compressed bytes and their parts, nonzeros, ratio; plus a total row."""
    rows = []
    for name, enc in encoded.items():
        size = int(np.prod(enc.shape))
        rows.append(
            {
                "layer": name,
                "shape": list(enc.shape),
                "bits": enc.bits,
                "gap_bits": enc.gap_bits,
                "nonzero_fraction": enc.nonzeros / size,
                "dense_bytes": enc.dense_nbytes,
                "index_bytes": enc.indices.nbytes,
                "gap_bytes": enc.gaps.nbytes,
                "codebook_bytes": int(enc.codebook.nbytes),
                "compressed_bytes": enc.nbytes,
                "ratio": enc.dense_nbytes / max(enc.nbytes, 1),
            }
        )
    dense = sum(r["dense_bytes"] for r in rows)
    compressed = sum(r["compressed_bytes"] for r in rows)
    rows.append(
        {"layer": "TOTAL", "dense_bytes": dense, "compressed_bytes": compressed, "ratio": dense / max(compressed, 1)}
    )
    return rows
