"""Network Slimming (Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming").

Train with an L1 penalty on every BatchNorm scale, ``L = L_task + lambda * sum |gamma|``
(:func:`add_gamma_penalty`; the paper uses lambda = 1e-4 for VGG, 1e-5 for ResNet), then
:func:`slim` picks ONE global threshold on ``|gamma|`` that removes a fraction ``ratio`` of
the BatchNorm channels and rebuilds the functional model with fewer filters: Conv, Depthwise,
BatchNorm and Dense shapes shrink and the kept weights are copied. Channels tied by residual
adds or concatenations (:mod:`tfcompress.pruning.channels`) are one unit whose importance is
its largest ``|gamma|``, so they are removed together or not at all. Then finetune.

A removed channel's BatchNorm output ``beta`` is dropped with it: the rebuilt model computes
exactly the same function when the removed channels have ``gamma = beta = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.pruning.channels import ChannelGraph, _is_producer, build_channel_graph, functional_nodes
from tfcompress.pruning.prune import copy_model


def add_gamma_penalty(model: keras.Model, l1: float = 1e-5) -> keras.Model:
    """A NEW model with ``keras.regularizers.L1(l1)`` on every BatchNorm gamma (the sparsity term).

    Raises:
        TfcompressError: ``l1`` is negative, or the model has no BatchNorm with a scale.
    """
    if l1 < 0:
        raise TfcompressError(f"the L1 penalty must be >= 0, got {l1}")
    clone = copy_model(model)
    found = 0
    for layer in clone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            layer.gamma.regularizer = keras.regularizers.L1(l1)
            found += 1
    if not found:
        raise UnsupportedLayerError(f"model {model.name!r} has no BatchNormalization with a scale to slim")
    return clone


@dataclass
class SlimReport:
    """What :func:`slim` removed: channels per layer, the threshold, parameters before and after."""

    threshold: float
    removed_channels: int
    total_channels: int
    layer_channels: dict[str, tuple[int, int]]  # producer layer -> (before, after)
    params_before: int
    params_after: int


def _bn_nodes(model: keras.Model, graph: ChannelGraph) -> list[tuple[keras.layers.Layer, np.ndarray]]:
    found = []
    for node in functional_nodes(model):
        layer = node.operation
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale and not node.is_input:
            found.append((layer, graph.tensor_nodes[id(node.input_tensors[0])]))
    return found


def channel_importance(model: keras.Model, graph: ChannelGraph) -> dict[int, float]:
    """Importance of each prunable channel group (root -> max |gamma| over its BatchNorm channels)."""
    frozen = graph.frozen_roots()
    importance: dict[int, float] = {}
    for layer, nodes in _bn_nodes(model, graph):
        gamma = np.abs(keras.ops.convert_to_numpy(layer.gamma))
        for root, value in zip(graph.component(nodes).tolist(), gamma.tolist(), strict=True):
            if root not in frozen:
                importance[root] = max(importance.get(root, 0.0), value)
    return importance


def choose_removed(model: keras.Model, graph: ChannelGraph, ratio: float) -> tuple[set[int], float, int, int]:
    """Groups to remove for a global ``ratio`` of BatchNorm channels: ``(roots, threshold, removed, total)``."""
    importance = channel_importance(model, graph)
    sizes: dict[int, int] = {}
    total = 0
    for _, nodes in _bn_nodes(model, graph):
        total += len(nodes)
        for root in graph.component(nodes).tolist():
            sizes[root] = sizes.get(root, 0) + 1
    target = ratio * total
    removed: set[int] = set()
    count = 0
    threshold = 0.0
    for root in sorted(importance, key=lambda r: (importance[r], r)):
        threshold = importance[root]
        if count + sizes[root] > target + 1e-9:
            break
        removed.add(root)
        count += sizes[root]
    else:
        threshold = float("inf")
    return removed, threshold, count, total


def _slice_weights(layer: keras.layers.Layer, weights: list[np.ndarray], keep_in, keep_out) -> list[np.ndarray]:
    if _is_producer(layer):  # kernel [..., in, out], bias [out]
        kernel = weights[0][..., keep_in, :][..., keep_out]
        return [kernel, *(w[keep_out] for w in weights[1:])]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [weights[0][:, :, keep_in, :], *(w[keep_in] for w in weights[1:])]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [w[keep_in] for w in weights]
    return weights


def slim(model: keras.Model, ratio: float, return_report: bool = False):
    """A NEW, thinner functional model without the ``ratio`` least important BatchNorm channels.

    Args:
        model: a Functional or Sequential model (trained with :func:`add_gamma_penalty`).
        ratio: fraction of all BatchNorm channels to remove, in ``[0, 1)``, with one global
            threshold on ``|gamma|`` (coupled channels go together).
        return_report: also return a :class:`SlimReport`.

    Raises:
        TfcompressError: ``ratio`` outside ``[0, 1)``, or it would remove every channel of a layer.
        UnsupportedLayerError: a subclassed model, or no BatchNorm to rank channels by.
    """
    if not 0.0 <= ratio < 1.0:
        raise TfcompressError(f"slimming ratio must be in [0, 1), got {ratio}")
    graph = build_channel_graph(model)
    if not _bn_nodes(model, graph):
        raise UnsupportedLayerError(f"model {model.name!r} has no BatchNormalization layer to rank channels by")
    removed, threshold, count, total = choose_removed(model, graph, ratio)

    def keep(tensor) -> np.ndarray:
        return ~np.isin(graph.component(graph.tensor_nodes[id(tensor)]), list(removed))

    keeps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in functional_nodes(model):
        layer = node.operation
        if node.is_input or layer is None or len(node.input_tensors) != 1:
            continue
        keep_in, keep_out = keep(node.input_tensors[0]), keep(node.outputs[0])
        if not keep_out.any():
            raise TfcompressError(
                f"slimming ratio {ratio} would remove every channel of layer {layer.name!r} "
                f"(global |gamma| threshold {threshold:.3g}); use a smaller ratio"
            )
        keeps[layer.name] = (keep_in, keep_out)

    def thinner(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if _is_producer(layer) and layer.name in keeps:
            key = "filters" if "filters" in config else "units"
            config[key] = int(keeps[layer.name][1].sum())
        return layer.__class__.from_config(config)

    thin = keras.models.clone_model(model, clone_function=thinner)
    changes: dict[str, tuple[int, int]] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in keeps:
            keep_in, keep_out = keeps[layer.name]
            weights = _slice_weights(layer, weights, keep_in, keep_out)
            if _is_producer(layer):
                changes[layer.name] = (len(keep_out), int(keep_out.sum()))
        thin.get_layer(layer.name).set_weights(weights)
    if not return_report:
        return thin
    report = SlimReport(threshold, count, total, changes, model.count_params(), thin.count_params())
    return thin, report


def bn_gammas(model: keras.Model) -> np.ndarray:
    """All BatchNorm ``|gamma|`` values of ``model``, concatenated (for histograms and thresholds)."""
    values = [
        np.abs(keras.ops.convert_to_numpy(layer.gamma))
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale
    ]
    return np.concatenate(values) if values else np.zeros(0)


__all__ = ["SlimReport", "add_gamma_penalty", "bn_gammas", "channel_importance", "choose_removed", "slim"]
