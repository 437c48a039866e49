"""Trained quantization, Deep Compression's second stage (Han et al., ICLR 2016, section 3.2).

After k-means weight sharing every kernel of a :class:`~tfcompress.pruning.layers.SharedConv2D`
/ :class:`~tfcompress.pruning.layers.SharedDense` holds a few distinct values (the centroids
``c_k``); finetuning then updates the centroids, not the individual weights. Han et al. take
the centroid gradient as the sum of the gradients of the weights in its cluster,

    dL/dc_k = sum_{i: I_i = k} dL/dW_i.

Here a kernel keeps its own variable and its gradient is replaced by the cluster's *mean*
gradient (``1/|k| sum_{i: I_i = k} dL/dW_i`` for every member, 0 for pruned weights): the same
direction as Han et al., with a step that does not grow with the cluster's population, so one
learning rate fits a 5x5x512 kernel and a 3x3x32 one. All members of a cluster start equal
and receive identical updates (gradient, momentum and decoupled weight decay), so the kernel
stays exactly shared through training and the converter recovers the finetuned centroids
bit for bit (:func:`~tfcompress.pruning.layers.codebook_and_indices`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np

from tfcompress.errors import UnsupportedLayerError
from tfcompress.pruning.finetune import FinetuneConfig, finetune
from tfcompress.pruning.prune import copy_model


def tied_kernel(kernel, cluster_ids: np.ndarray, clusters: int):
    """``kernel`` unchanged in the forward pass; backward, each weight gets its cluster's mean gradient.

    ``cluster_ids`` (ints of the kernel's shape, 0 = pruned) name each weight's centroid. With
    ``m_i = mean_{j: I_j = I_i} W_j`` the result is ``(I != 0) * (stopgrad(W - m) + m)``: equal
    to ``W`` (pruned weights are 0), and ``d/dW_j`` of it routes ``1/|k| sum_{i in k} g_i`` to
    every ``j`` in cluster ``k``.
    """
    ids = keras.ops.reshape(keras.ops.convert_to_tensor(cluster_ids, "int32"), (-1,))
    flat = keras.ops.reshape(kernel, (-1,))
    sums = keras.ops.segment_sum(flat, ids, num_segments=clusters)
    counts = keras.ops.segment_sum(keras.ops.ones_like(flat), ids, num_segments=clusters)
    means = keras.ops.take(sums / keras.ops.maximum(counts, 1.0), ids)
    kept = keras.ops.cast(ids != 0, flat.dtype)
    tied = kept * (keras.ops.stop_gradient(flat - means) + means)
    return keras.ops.reshape(tied, keras.ops.shape(kernel))


def tie_to_clusters(model: keras.Model) -> int:
    """Make every shared layer of ``model`` train its centroids (see :func:`tied_kernel`); returns how many.

    Raises:
        UnsupportedLayerError: ``model`` has no shared layer (run ``deep_compress`` first).
    """
    from tfcompress.pruning.layers import codebook_and_indices, shared_layers

    layers = shared_layers(model)
    if not layers:
        raise UnsupportedLayerError(
            f"model {model.name!r} has no SharedConv2D/SharedDense layer: run tfcompress.pruning.deep_compress first"
        )
    for layer in layers:
        _, indices = codebook_and_indices(keras.ops.convert_to_numpy(layer.kernel), layer.weight_bits)
        layer.cluster_ids = indices.astype(np.int32)
    return len(layers)


def untie(model: keras.Model) -> keras.Model:
    """Drop the cluster ties of :func:`tie_to_clusters` (the kernels keep their values); returns ``model``."""
    from tfcompress.pruning.layers import shared_layers

    for layer in shared_layers(model):
        layer.cluster_ids = None
    return model


def finetune_centroids(
    model: keras.Model,
    data_dir: str | os.PathLike | None,
    config: FinetuneConfig | None = None,
    teacher: keras.Model | None = None,
    devices: int | Sequence[str] | None = None,
    backup_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Finetune the shared centroids (and BatchNorm, biases) of a deep-compressed ``model``; returns a new model.

    ``model`` is not changed. The result has the same shared layers, the same cluster of every
    weight and the same zeros; only the centroid values (and unshared weights) moved.
    """

    def make() -> keras.Model:
        copy = copy_model(model)
        tie_to_clusters(copy)
        return copy

    image_size = int(model.inputs[0].shape[1])
    trained = finetune(make, data_dir, image_size, config, teacher=teacher, devices=devices,
                       backup_dir=backup_dir, limit=limit, verbose=verbose)  # fmt: skip
    return untie(trained)
