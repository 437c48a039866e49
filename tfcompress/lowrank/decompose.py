"""The tensor algebra of low-rank factorization: kernels in, factor kernels out.

Every function takes a Keras kernel (Dense ``(in, out)``, Conv2D ``(kh, kw, C, N)``) and
returns the kernels of the small layers that replace it, in the order they run. The
work is done in float64 and returned as float32.

- Truncated SVD (Eckart & Young 1936): ``W ~ U_r S_r V_r^T``, split as
  ``(U_r S_r^1/2)(S_r^1/2 V_r^T)``; best rank-r approximation in Frobenius norm.
- Weight SVD of a conv (as in AIMET): the kernel as a ``(kh kw C) x N`` matrix, giving a
  ``kh x kw`` conv to ``r`` channels and a ``1x1`` conv to ``N``.
- Spatial SVD (Jaderberg, Vedaldi & Zisserman 2014, "Speeding up Convolutional Neural
  Networks with Low Rank Expansions"): the kernel as a ``(kh C) x (kw N)`` matrix, giving
  a ``kh x 1`` conv to ``r`` channels and a ``1 x kw`` conv to ``N``.
- Tucker-2 (Kim et al. 2016, "Compression of Deep Convolutional Neural Networks for Fast
  and Low Power Mobile Applications"): ``W ~ G x_3 U x_4 V`` with ``U (C x r1)``,
  ``V (N x r2)``, core ``G (kh, kw, r1, r2)``; HOSVD init (De Lathauwer et al. 2000), with
  optional HOOI/ALS sweeps. Layers: ``1x1 (C->r1)``, ``kh x kw (r1->r2)``, ``1x1 (r2->N)``.
- CP (Lebedev et al. 2015, "Speeding-up Convolutional Neural Networks Using Fine-tuned
  CP-Decomposition"): ``W[i,j,c,n] ~ sum_r A[i,r] B[j,r] C[c,r] D[n,r]`` by CP-ALS. Layers:
  ``1x1 (C->R)``, depthwise ``kh x 1``, depthwise ``1 x kw``, ``1x1 (R->N)``.
"""

from __future__ import annotations

import warnings

import numpy as np


def svd_split(matrix: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``matrix (m, n) ~ left (m, r) @ right (r, n)``, the singular values split evenly."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of ``matrix``, largest first."""
    return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)


def dense_matrix(kernel: np.ndarray) -> np.ndarray:
    """A Dense kernel ``(in, out)`` or a 1x1 conv kernel ``(1, 1, C, N)`` as a ``(in, out)`` matrix."""
    return kernel.reshape(-1, kernel.shape[-1])


def spatial_matrix(kernel: np.ndarray) -> np.ndarray:
    """``M[(i, c), (j, n)] = W[i, j, c, n]``: the ``(kh C) x (kw N)`` matrix of spatial SVD."""
    kh, kw, c, n = kernel.shape
    return kernel.transpose(0, 2, 1, 3).reshape(kh * c, kw * n)


def channel_unfoldings(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode-3 ``(C, kh kw N)`` and mode-4 ``(N, kh kw C)`` unfoldings (Tucker-2's two modes)."""
    c, n = kernel.shape[2:]
    return kernel.transpose(2, 0, 1, 3).reshape(c, -1), kernel.transpose(3, 0, 1, 2).reshape(n, -1)


def dense_svd(kernel: np.ndarray, rank: int) -> list[np.ndarray]:
    """Dense ``(in, out)`` -> ``[(in, r), (r, out)]``; 1x1 conv -> ``[(1,1,C,r), (1,1,r,N)]``."""
    left, right = svd_split(dense_matrix(kernel), rank)
    if kernel.ndim == 4:
        left, right = left[None, None], right[None, None]
    return [left.astype(np.float32), right.astype(np.float32)]


def conv_weight_svd(kernel: np.ndarray, rank: int) -> list[np.ndarray]:
    """Conv ``(kh, kw, C, N)`` -> ``[(kh, kw, C, r), (1, 1, r, N)]``."""
    kh, kw, c, _ = kernel.shape
    left, right = svd_split(kernel.reshape(kh * kw * c, -1), rank)
    return [left.reshape(kh, kw, c, rank).astype(np.float32), right[None, None].astype(np.float32)]


def spatial_svd(kernel: np.ndarray, rank: int) -> list[np.ndarray]:
    """Conv ``(kh, kw, C, N)`` -> ``[(kh, 1, C, r), (1, kw, r, N)]``."""
    kh, kw, c, n = kernel.shape
    left, right = svd_split(spatial_matrix(kernel), rank)
    vertical = left.reshape(kh, c, rank)[:, None]
    horizontal = right.reshape(rank, kw, n).transpose(1, 0, 2)[None]
    return [vertical.astype(np.float32), horizontal.astype(np.float32)]


def tucker2(kernel: np.ndarray, ranks: tuple[int, int], iterations: int = 0) -> list[np.ndarray]:
    """Conv ``(kh, kw, C, N)`` -> ``[(1, 1, C, r1), (kh, kw, r1, r2), (1, 1, r2, N)]``.

    ``iterations = 0`` is the truncated HOSVD; more run that many HOOI (ALS) sweeps,
    which never increase the reconstruction error.
    """
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    tl.set_backend("numpy")
    (core, (u_in, u_out)), _ = partial_tucker(
        np.asarray(kernel, np.float64), rank=list(ranks), modes=[2, 3], n_iter_max=iterations, init="svd"
    )
    return [
        u_in[None, None].astype(np.float32),
        np.asarray(core).astype(np.float32),
        u_out.T[None, None].astype(np.float32),
    ]


def cp(kernel: np.ndarray, rank: int, iterations: int = 100, seed: int = 0) -> list[np.ndarray]:
    """Conv ``(kh, kw, C, N)`` -> ``[(1,1,C,R), (kh,1,R,1), (1,kw,R,1), (1,1,R,N)]`` by CP-ALS.

    The component weights are spread evenly over the four factors so that no layer of
    the replacement carries all of the scale (which helps finetuning).
    """
    import tensorly as tl
    from tensorly.decomposition import parafac

    tl.set_backend("numpy")
    with warnings.catch_warnings():  # the SVD init pads modes smaller than the rank, and says so
        warnings.simplefilter("ignore", UserWarning)
        weights, (a, b, c, d) = parafac(
            np.asarray(kernel, np.float64),
            rank=rank,
            n_iter_max=iterations,
            init="svd",
            normalize_factors=True,
            random_state=seed,
            tol=1e-10,
        )
    signs = np.sign(weights)
    signs[signs == 0] = 1.0
    scale = np.abs(weights) ** 0.25
    a, b, c, d = a * scale, b * scale, c * scale, d * scale * signs
    return [
        c[None, None].astype(np.float32),
        a[:, None, :, None].astype(np.float32),
        b[None, :, :, None].astype(np.float32),
        d.T[None, None].astype(np.float32),
    ]
