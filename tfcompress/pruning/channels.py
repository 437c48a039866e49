"""Channel coupling in a functional Keras graph: which channels must be removed together.

Every channel of every tensor is a node; a layer that makes new channels (Conv, Dense) gives
its output fresh nodes, a per-channel layer (BatchNorm, ReLU, pooling, depthwise conv with
multiplier 1, ...) passes its input's nodes through, an element-wise merge (Add, Multiply,
...) unites its inputs channel by channel, and a concatenation joins their node lists. The
connected components (union-find) are the units that can be kept or removed. Channels
that reach a model input or output, or any layer this module does not understand (Flatten,
Reshape, custom layers), are frozen: they can never be removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from tfcompress.errors import UnsupportedLayerError

PRODUCERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
PER_CHANNEL = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.Identity,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
)
MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)
TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


@dataclass
class ChannelGraph:
    """The channel nodes of each tensor (by ``id``), their union-find, and the frozen nodes."""

    tensor_nodes: dict[int, np.ndarray] = field(default_factory=dict)
    parent: list[int] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)

    def new_nodes(self, count: int, frozen: bool = False) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        nodes = np.arange(start, start + count)
        if frozen:
            self.frozen.update(nodes.tolist())
        return nodes

    def find(self, node: int) -> int:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            ra, rb = self.find(x), self.find(y)
            if ra != rb:
                self.parent[rb] = ra

    def freeze(self, nodes: np.ndarray) -> None:
        self.frozen.update(nodes.tolist())

    def component(self, nodes: np.ndarray) -> np.ndarray:
        return np.array([self.find(n) for n in nodes.tolist()], dtype=np.int64)

    def frozen_roots(self) -> set[int]:
        return {self.find(n) for n in self.frozen}


def _channels(tensor) -> int:
    return int(tensor.shape[-1])


def _is_scalar_rescaling(layer) -> bool:
    return isinstance(layer, keras.layers.Rescaling) and np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0


def _is_per_channel(layer) -> bool:
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis in (-1, len(layer.input.shape) - 1) if hasattr(layer, "input") else layer.axis == -1
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depth_multiplier == 1
    return isinstance(layer, PER_CHANNEL) or _is_scalar_rescaling(layer)


def _is_producer(layer) -> bool:
    if not isinstance(layer, PRODUCERS) or isinstance(layer, TRANSPOSED):
        return False
    return getattr(layer, "groups", 1) == 1


def functional_nodes(model: keras.Model) -> list:
    """The model's call nodes in topological order (inputs first)."""
    if isinstance(model, keras.Sequential):
        model = model._functional
    if not hasattr(model, "_nodes_by_depth"):
        raise UnsupportedLayerError(
            f"model {model.name!r} is subclassed; channel slimming needs a Functional or Sequential model"
        )
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]


def build_channel_graph(model: keras.Model) -> ChannelGraph:
    """Trace ``model`` and unite coupled channels; freeze what touches inputs, outputs, unknown layers."""
    graph = ChannelGraph()
    for tensor in model.inputs:
        graph.tensor_nodes[id(tensor)] = graph.new_nodes(_channels(tensor), frozen=True)
    seen_layers: set[int] = set()
    for node in functional_nodes(model):
        layer = node.operation
        if node.is_input or layer is None:
            continue
        inputs = [graph.tensor_nodes[id(t)] for t in node.input_tensors]
        outputs = node.outputs
        shared = id(layer) in seen_layers
        seen_layers.add(id(layer))
        if shared:  # a layer called twice would need both calls' channels to agree: keep it whole
            for nodes in inputs:
                graph.freeze(nodes)
            for out in outputs:
                graph.tensor_nodes[id(out)] = graph.new_nodes(_channels(out), frozen=True)
            continue
        if _is_producer(layer) and len(inputs) == 1:
            graph.tensor_nodes[id(outputs[0])] = graph.new_nodes(_channels(outputs[0]))
        elif _is_per_channel(layer) and len(inputs) == 1:
            graph.tensor_nodes[id(outputs[0])] = inputs[0]
        elif isinstance(layer, MERGES) and all(len(n) == len(inputs[0]) for n in inputs):
            for other in inputs[1:]:
                graph.union(inputs[0], other)
            graph.tensor_nodes[id(outputs[0])] = inputs[0]
        elif isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, len(outputs[0].shape) - 1):
            graph.tensor_nodes[id(outputs[0])] = np.concatenate(inputs)
        else:  # unknown: its inputs are frozen, its outputs are fresh frozen channels
            for nodes in inputs:
                graph.freeze(nodes)
            for out in outputs:
                graph.tensor_nodes[id(out)] = graph.new_nodes(_channels(out), frozen=True)
    for tensor in model.outputs:
        graph.freeze(graph.tensor_nodes[id(tensor)])
    return graph
