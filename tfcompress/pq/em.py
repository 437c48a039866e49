"""Activation-aware k-means: the EM of "And the Bit Goes Down" (Stock et al. 2020).

For subvectors ``w_i`` (rows of ``weights``, shape ``(n, d)``) and the layer's input
activations ``x~`` cut into the same blocks of ``d`` columns, the objective is::

    sum_i || x~ (w_i - c_{a(i)}) ||^2  =  sum_i (w_i - c_{a(i)})^T G (w_i - c_{a(i)}),
    G = x~^T x~  (d x d)

Whitening identity: with ``G = L L^T`` (Cholesky), ``||x~ (w - c)||^2 = ||L^T w - L^T c||^2``,
so the E-step (assign each ``w_i`` to its nearest centroid under ``G``) is a plain
nearest-neighbour search on ``z_i = L^T w_i``, and the M-step (the ``c`` minimising the
weighted error of its members) is the plain mean of the members, because
``sum_i G (w_i - c) = 0`` gives ``c = mean(w_i)`` for ``G`` of full rank. The weighted
problem therefore costs the same as plain k-means on ``z``. ``G`` is damped by
``damping * trace(G) / d * I`` so that it has full rank (dead ReLU channels make it
singular).

Nearest-centroid search uses faiss (``faiss.knn``, exact L2). An empty cluster is split
from the most populated one: its centroid becomes that centroid plus a small random
offset and the big one moves the opposite way, so the next E-step shares its members.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tfcompress.errors import TfcompressError


@dataclass
class PQFit:
    """Result of :func:`activation_aware_kmeans`.

    Attributes:
        codebook: centroids ``(k, d)`` in weight space (float32).
        codes: index of each subvector's centroid, ``(n,)`` int32.
        objective: final ``sum_i ||x~(w_i - c_{a(i)})||^2`` (with the damped ``G``).
        iterations: EM iterations run.
        empty_splits: how many times an empty cluster was split from the largest one.
    """

    codebook: np.ndarray
    codes: np.ndarray
    objective: float
    iterations: int
    empty_splits: int


def capped_centroids(n_centroids: int, n_subvectors: int, name: str = "layer") -> int:
    """``k`` capped at ``n_subvectors / 4`` (the paper's rule), with a warning when capped.

    Raises:
        TfcompressError: fewer than 8 subvectors (not even 2 centroids).
    """
    cap = n_subvectors // 4
    if cap < 2:
        raise TfcompressError(f"{name}: only {n_subvectors} subvectors, too few to product-quantize")
    if n_centroids > cap:
        warnings.warn(
            f"{name}: {n_centroids} centroids capped at {cap} (n_subvectors / 4 = {n_subvectors} / 4)", stacklevel=2
        )
        return cap
    return n_centroids


def whitening_factor(gram: np.ndarray | None, d: int, damping: float = 1e-4) -> np.ndarray:
    """Lower-triangular ``L`` with ``G + damping * tr(G)/d * I = L L^T`` (identity when ``gram`` is None)."""
    if gram is None:
        return np.eye(d)
    gram = np.asarray(gram, dtype=np.float64)
    if gram.shape != (d, d):
        raise TfcompressError(f"Gram matrix has shape {gram.shape}, expected ({d}, {d})")
    scale = max(np.trace(gram) / d, 1e-12)
    return np.linalg.cholesky(gram + damping * scale * np.eye(d))


def weighted_objective(weights: np.ndarray, codebook: np.ndarray, codes: np.ndarray, gram: np.ndarray) -> float:
    """The naive ``sum_i (w_i - c_{a(i)})^T G (w_i - c_{a(i)})`` (reference for tests)."""
    residual = np.asarray(weights, np.float64) - np.asarray(codebook, np.float64)[codes]
    return float(np.einsum("ni,ij,nj->", residual, gram, residual))


def assign_codes(weights: np.ndarray, centroids: np.ndarray, gram: np.ndarray | None, damping: float = 1e-4):
    """E-step: index of each subvector's nearest centroid under the damped ``G``, by whitening.

    Equals ``argmin_c (w - c)^T G' (w - c)`` with ``G' = G + damping * tr(G)/d * I``.
    """
    factor = whitening_factor(gram, np.shape(weights)[1], damping)
    return _nearest(np.asarray(weights, np.float64) @ factor, np.asarray(centroids, np.float64) @ factor)[0]


def damped_gram(gram: np.ndarray, damping: float = 1e-4) -> np.ndarray:
    """``G + damping * tr(G)/d * I``: the matrix the EM actually weighs errors with."""
    factor = whitening_factor(gram, len(gram), damping)
    return factor @ factor.T


def _nearest(points: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    distances, indices = faiss.knn(
        np.ascontiguousarray(points, dtype=np.float32), np.ascontiguousarray(centroids, dtype=np.float32), 1
    )
    return indices[:, 0].astype(np.int32), distances[:, 0]


def _initial_centroids(points: np.ndarray, k: int, rng: np.random.Generator, per_centroid: int = 40) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007, D^2 sampling) on at most ``per_centroid * k`` points."""
    sample = points if len(points) <= per_centroid * k else points[rng.choice(len(points), per_centroid * k, False)]
    chosen = [int(rng.integers(len(sample)))]
    nearest = np.sum((sample - sample[chosen[0]]) ** 2, axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        index = int(rng.choice(len(sample), p=nearest / total)) if total > 0 else int(rng.integers(len(sample)))
        chosen.append(index)
        nearest = np.minimum(nearest, np.sum((sample - sample[index]) ** 2, axis=1))
    return sample[chosen].astype(np.float64)


def _means(points: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(codes, minlength=k)
    sums = np.stack([np.bincount(codes, weights=points[:, j], minlength=k) for j in range(points.shape[1])], axis=1)
    return sums / np.maximum(counts, 1)[:, None], counts


def _split_empty(centroids: np.ndarray, counts: np.ndarray, rng: np.random.Generator, spread: float) -> int:
    splits = 0
    for empty in np.flatnonzero(counts == 0):
        largest = int(np.argmax(counts))
        if counts[largest] < 2:
            break
        offset = spread * rng.standard_normal(centroids.shape[1])
        centroids[empty] = centroids[largest] + offset
        centroids[largest] -= offset
        counts[empty] = counts[largest] // 2
        counts[largest] -= counts[empty]
        splits += 1
    return splits


def activation_aware_kmeans(
    weights: np.ndarray,
    n_centroids: int,
    gram: np.ndarray | None = None,
    n_iter: int = 30,
    seed: int = 0,
    damping: float = 1e-4,
) -> PQFit:
    """Cluster subvectors under the activation-weighted metric ``(w - c)^T G (w - c)``.

    Args:
        weights: subvectors, shape ``(n, d)``.
        n_centroids: ``k`` (at most ``n``).
        gram: ``x~^T x~`` of the layer's input blocks, ``(d, d)``; ``None`` for plain k-means.
        n_iter: maximum EM iterations (stops earlier when no assignment changes).
        seed: seed of the k-means++ seeding (on a subsample of at most ``40 k`` subvectors).
        damping: relative ridge added to ``G`` so that it has full rank.

    Returns:
        A :class:`PQFit`; its centroids are in weight space.
    """
    weights = np.asarray(weights, dtype=np.float64)
    n, d = weights.shape
    if not 1 <= n_centroids <= n:
        raise TfcompressError(f"n_centroids must be in [1, {n}] for {n} subvectors, got {n_centroids}")
    factor = whitening_factor(gram, d, damping)
    whitened = weights @ factor  # row i is (L^T w_i)^T
    rng = np.random.default_rng(seed)
    centroids = _initial_centroids(whitened, n_centroids, rng)
    spread = 1e-3 * float(np.std(whitened)) + 1e-12
    codes = np.full(n, -1, dtype=np.int32)
    splits = iterations = 0
    for iterations in range(1, n_iter + 1):  # noqa: B007 - the count is reported
        new_codes, _ = _nearest(whitened, centroids)
        changed = not np.array_equal(new_codes, codes)
        codes = new_codes
        means, counts = _means(whitened, codes, n_centroids)
        centroids = np.where(counts[:, None] > 0, means, centroids)
        splits += _split_empty(centroids, counts, rng, spread)
        if not changed:
            break
    codes, _ = _nearest(whitened, centroids)
    # M-step in weight space: the mean commutes with L^T; an unused centroid is mapped back.
    means, counts = _means(weights, codes, n_centroids)
    unmapped = np.linalg.solve(factor.T, centroids.T).T
    codebook = np.where(counts[:, None] > 0, means, unmapped)
    residual = (weights - codebook[codes]) @ factor
    return PQFit(
        codebook=codebook.astype(np.float32),
        codes=codes,
        objective=float(np.sum(residual**2)),
        iterations=iterations,
        empty_splits=splits,
    )
