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

import math
import warnings
from dataclasses import dataclass, field

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.nested import inline_submodels
from tfcompress.pruning.channels import ChannelGraph, _is_producer, build_channel_graph, functional_nodes
from tfcompress.pruning.prune import copy_model
from tfcompress.skipped import SkippedLayer, attach_skipped, describe_skipped


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
    """What :func:`slim` removed: channels per layer, the threshold, parameters before and after.

    ``skipped`` lists the layers not slimmed as the threshold asked: those whose share was
    capped so that they keep channels, and those whose channels cannot be removed at all.
    """

    threshold: float
    removed_channels: int
    total_channels: int
    layer_channels: dict[str, tuple[int, int]]  # producer layer -> (before, after)
    params_before: int
    params_after: int
    skipped: list[SkippedLayer] = field(default_factory=list)


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


@dataclass
class _Guard:
    """The output of one layer: its channel groups, and how many channels it must keep."""

    layer: keras.layers.Layer
    roots: np.ndarray
    floor: int
    kept: int = 0
    wanted: int = 0  # channels the threshold would have removed but the cap kept

    def __post_init__(self) -> None:
        self.kept = len(self.roots)


def _guards(model: keras.Model, graph: ChannelGraph, min_kept: float) -> list[_Guard]:
    """One guard per distinct output of a one-input layer (a per-channel layer shares its producer's)."""
    guards: dict[int, _Guard] = {}
    for node in functional_nodes(model):
        if node.is_input or node.operation is None or len(node.input_tensors) != 1:
            continue
        nodes = graph.tensor_nodes[id(node.outputs[0])]
        if id(nodes) not in guards:
            floor = max(1, math.ceil(min_kept * len(nodes)))
            guards[id(nodes)] = _Guard(node.operation, graph.component(nodes), floor)
    return list(guards.values())


def choose_removed(
    model: keras.Model, graph: ChannelGraph, ratio: float, min_kept: float = 0.0
) -> tuple[set[int], float, int, int, list[_Guard]]:
    """Groups to remove for a global ``ratio`` of BatchNorm channels: ``(roots, threshold, removed, total, capped)``.

    Groups go in order of importance until ``ratio`` of the channels are gone; a group whose
    removal would leave some layer's output with fewer than ``max(1, ceil(min_kept * C))``
    of its ``C`` channels stays, and the next group is tried instead. ``capped`` are the
    layer outputs that kept a group that way.
    """
    importance = channel_importance(model, graph)
    sizes: dict[int, int] = {}
    total = 0
    for _, nodes in _bn_nodes(model, graph):
        total += len(nodes)
        for root in graph.component(nodes).tolist():
            sizes[root] = sizes.get(root, 0) + 1
    guards = _guards(model, graph, min_kept)
    members: dict[int, list[tuple[_Guard, int]]] = {}
    for guard in guards:
        roots, counts = np.unique(guard.roots, return_counts=True)
        for root, count in zip(roots.tolist(), counts.tolist(), strict=True):
            members.setdefault(root, []).append((guard, count))
    target = ratio * total
    removed: set[int] = set()
    capped: list[_Guard] = []
    count = 0
    threshold = 0.0
    for root in sorted(importance, key=lambda r: (importance[r], r)):
        threshold = importance[root]
        if count + sizes[root] > target + 1e-9:
            break
        blocking = [(guard, n) for guard, n in members.get(root, []) if guard.kept - n < guard.floor]
        if blocking:
            for guard, n in blocking:
                if not guard.wanted:
                    capped.append(guard)
                guard.wanted += n
            continue
        for guard, n in members.get(root, []):
            guard.kept -= n
        removed.add(root)
        count += sizes[root]
    else:
        threshold = float("inf")
    return removed, threshold, count, total, capped


def _unslimmable(model: keras.Model, graph: ChannelGraph, capped: list[_Guard]) -> list[SkippedLayer]:
    """Records of the capped layers, then of the producers none of whose channels can be removed.

    A layer that makes the model's output is not listed: its channels are the output's.
    """
    records = [
        SkippedLayer.of(
            guard.layer,
            f"share capped: the threshold would remove {len(guard.roots) - guard.kept + guard.wanted} of its "
            f"{len(guard.roots)} channels, {guard.kept} kept",
        )
        for guard in capped
    ]
    frozen, ranked = graph.frozen_roots(), set(channel_importance(model, graph))
    outputs = [id(tensor) for tensor in model.outputs]
    for node in functional_nodes(model):
        layer = node.operation
        if node.is_input or not _is_producer(layer) or len(node.input_tensors) != 1 or id(node.outputs[0]) in outputs:
            continue
        roots = set(graph.component(graph.tensor_nodes[id(node.outputs[0])]).tolist())
        if roots <= frozen:
            why = "its channels reach the model's output or a layer slimming cannot follow"
            records.append(SkippedLayer.of(layer, why))
        elif not roots & ranked:
            records.append(SkippedLayer.of(layer, "no BatchNormalization ranks its channels"))
    return records


def _slice_weights(layer: keras.layers.Layer, weights: list[np.ndarray], keep_in, keep_out) -> list[np.ndarray]:
    if _is_producer(layer):  # kernel [..., in, out], bias [out]
        kernel = weights[0][..., keep_in, :][..., keep_out]
        return [kernel, *(w[keep_out] for w in weights[1:])]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [weights[0][:, :, keep_in, :], *(w[keep_in] for w in weights[1:])]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [w[keep_in] for w in weights]
    return weights


def slim(model: keras.Model, ratio: float, return_report: bool = False, min_kept: float = 0.0):
    """A NEW, thinner functional model without the ``ratio`` least important BatchNorm channels.

    No layer is ever emptied: a layer's share is capped so that it keeps at least
    ``max(1, ceil(min_kept * C))`` of its ``C`` channels (a warning names the capped layers;
    the global ``ratio`` is still met from the other layers when they have channels to give).

    Args:
        model: a Functional or Sequential model (trained with :func:`add_gamma_penalty`).
        ratio: fraction of all BatchNorm channels to remove, in ``[0, 1)``, with one global
            threshold on ``|gamma|`` (coupled channels go together).
        return_report: also return a :class:`SlimReport`.
        min_kept: the fraction of each layer's channels that always stays, in ``[0, 1)``.

    The layers not slimmed as asked (capped, or whose channels cannot be removed at all) are
    in ``SlimReport.skipped`` and :func:`tfcompress.skipped.skipped_layers` of the result.

    Raises:
        TfcompressError: ``ratio`` or ``min_kept`` outside ``[0, 1)``.
        UnsupportedLayerError: a subclassed model, or no BatchNorm to rank channels by.
    """
    if not 0.0 <= ratio < 1.0:
        raise TfcompressError(f"slimming ratio must be in [0, 1), got {ratio}")
    if not 0.0 <= min_kept < 1.0:
        raise TfcompressError(f"min_kept must be in [0, 1), got {min_kept}")
    model = inline_submodels(model)  # a nested backbone's channels, slimmed like the others
    graph = build_channel_graph(model)
    if not _bn_nodes(model, graph):
        raise UnsupportedLayerError(f"model {model.name!r} has no BatchNormalization layer to rank channels by")
    removed, threshold, count, total, capped = choose_removed(model, graph, ratio, min_kept)
    skipped = _unslimmable(model, graph, capped)
    if capped:
        warnings.warn(describe_skipped(skipped[: len(capped)], "slimming capped: "), stacklevel=2)

    def keep(tensor) -> np.ndarray:
        return ~np.isin(graph.component(graph.tensor_nodes[id(tensor)]), list(removed))

    keeps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in functional_nodes(model):
        layer = node.operation
        if node.is_input or layer is None or len(node.input_tensors) != 1:
            continue
        keeps[layer.name] = (keep(node.input_tensors[0]), keep(node.outputs[0]))

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
    attach_skipped(thin, skipped)
    if not return_report:
        return thin
    report = SlimReport(threshold, count, total, changes, model.count_params(), thin.count_params(), skipped)
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
