"""Pruning masks from weight magnitudes (numpy): unstructured, N:M, and whole output channels.

All functions take a kernel in Keras layout (``Dense [in, out]``, ``Conv2D [kh, kw, in, out]``,
``DepthwiseConv2D [kh, kw, in, mult]``) and return a float32 mask of the same shape (1 keeps).

- unstructured (Han et al. 2015, "Learning both Weights and Connections"): zero the
  ``round(s * size)`` smallest ``|w|`` of the layer;
- N:M (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"; Ampere 2:4): in every
  group of ``m`` consecutive weights along the input dimension keep the ``n`` largest ``|w|``;
- channel (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): zero the output
  channels with the smallest L1 norm ``sum |w[..., j]|``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfcompress.errors import TfcompressError

Granularity = str | tuple[int, int]


def check_granularity(granularity: Granularity) -> Granularity:
    """Validate ``"weight"``, ``"channel"`` or ``(n, m)`` with ``0 < n < m``.

    Raises:
        TfcompressError: any other value.
    """
    if granularity in ("weight", "channel"):
        return granularity
    if isinstance(granularity, tuple | list) and len(granularity) == 2:
        n, m = (int(v) for v in granularity)
        if 0 < n < m:
            return (n, m)
        raise TfcompressError(f"N:M granularity needs 0 < N < M, got {n}:{m}")
    raise TfcompressError(f'granularity must be "weight", "channel" or (n, m), got {granularity!r}')


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep all but the ``round(sparsity * size)`` smallest-magnitude weights (ties broken by position)."""
    flat = np.abs(np.asarray(kernel, np.float32)).ravel()
    pruned = round(sparsity * flat.size)
    mask = np.ones(flat.size, np.float32)
    if pruned > 0:
        mask[np.argsort(flat, kind="stable")[:pruned]] = 0.0
    return mask.reshape(np.shape(kernel))


def global_layer_sparsities(kernels: Sequence[np.ndarray], sparsity: float, cap: float = 0.99) -> list[float]:
    """Per-kernel sparsities of one magnitude threshold over all ``kernels`` (global magnitude pruning).

    The ``round(sparsity * N)`` smallest ``|w|`` of all N weights together are pruned, so
    layers with many small weights (usually the wide late ones) give up more than small,
    sensitive ones (Han et al. 2015 prune per layer by hand-tuned sensitivity; a global
    threshold is the usual automatic allocation, cf. Blalock et al. 2020, "What is the State
    of Neural Network Pruning?"). A kernel is never pruned beyond ``cap``, so no layer is cut
    off entirely; the total then falls slightly short of ``sparsity``.
    """
    sizes = [int(np.size(k)) for k in kernels]
    flat = np.concatenate([np.abs(np.asarray(k, np.float32)).ravel() for k in kernels])
    pruned = np.zeros(flat.size, bool)
    pruned[np.argsort(flat, kind="stable")[: round(sparsity * flat.size)]] = True
    counts = np.add.reduceat(pruned, np.cumsum([0, *sizes[:-1]])) if sizes else []
    return [min(float(c) / size, cap) for c, size in zip(counts, sizes, strict=True)]


def input_axis(kernel_shape: tuple[int, ...]) -> int:
    """The axis of a kernel that runs over input channels (``-2``: Dense and convolutions)."""
    return len(kernel_shape) - 2


def n_m_misfit(kernel_shape: tuple[int, ...], n: int, m: int) -> str | None:
    """Why ``n:m`` pruning does not fit ``kernel_shape`` (``m`` does not divide its input dimension), or ``None``."""
    size = kernel_shape[input_axis(kernel_shape)]
    return f"{n}:{m} pruning: M={m} does not divide its input dimension {size}" if size % m else None


def check_n_m(kernel_shape: tuple[int, ...], n: int, m: int, layer_name: str = "layer") -> None:
    """Raise unless ``m`` divides the input dimension of ``kernel_shape``."""
    misfit = n_m_misfit(kernel_shape, n, m)
    if misfit:
        raise TfcompressError(f"{layer_name}: {misfit}")


def n_m_mask(kernel: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the ``n`` largest ``|w|`` of each group of ``m`` consecutive input-channel weights.

    Raises:
        TfcompressError: ``m`` does not divide the input dimension.
    """
    kernel = np.asarray(kernel, np.float32)
    check_n_m(kernel.shape, n, m)
    axis = input_axis(kernel.shape)
    moved = np.moveaxis(np.abs(kernel), axis, -1)  # [..., in]
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    order = np.argsort(-groups, axis=-1, kind="stable")
    mask = np.zeros_like(groups)
    np.put_along_axis(mask, order[..., :n], 1.0, axis=-1)
    return np.moveaxis(mask.reshape(moved.shape), -1, axis)


def channel_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the ``round(sparsity * C_out)`` output channels (last axis) with the smallest L1 norm.

    Raises:
        TfcompressError: the sparsity would remove every output channel.
    """
    kernel = np.asarray(kernel, np.float32)
    channels = kernel.shape[-1]
    pruned = round(sparsity * channels)
    if pruned >= channels:
        raise TfcompressError(f"channel sparsity {sparsity} would remove all {channels} output channels")
    norms = np.abs(kernel).reshape(-1, channels).sum(axis=0)
    keep = np.ones(channels, np.float32)
    keep[np.argsort(norms, kind="stable")[:pruned]] = 0.0
    return np.broadcast_to(keep, kernel.shape).astype(np.float32)


def compute_mask(kernel: np.ndarray, sparsity: float, granularity: Granularity) -> np.ndarray:
    """The mask of ``granularity`` at ``sparsity`` (an N:M mask ignores ``sparsity`` once it is > 0)."""
    if granularity == "weight":
        return magnitude_mask(kernel, sparsity)
    if granularity == "channel":
        return channel_mask(kernel, sparsity)
    if sparsity <= 0.0:
        return np.ones(np.shape(kernel), np.float32)
    n, m = granularity
    return n_m_mask(kernel, n, m)
