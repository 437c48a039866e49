"""Counting multiply-accumulates (MACs) and parameters of the layers factorization touches.

For a Conv2D, DepthwiseConv2D or Dense layer, ``MACs = output positions x kernel size``:
each output position of a conv (or each row of a Dense input) costs one multiply-add per
kernel weight (per group for grouped convs). Other layers (BatchNorm, adds, pooling) are
counted as free, which is how MAC budgets are usually quoted.
"""

from __future__ import annotations

import math

import keras


def layer_cost(layer: keras.layers.Layer, input_shape: tuple) -> tuple[int, int, tuple]:
    """``(macs, params, output_shape)`` of ``layer`` applied to ``input_shape`` (with batch axis).

    The layer need not be built: the cost is derived from its configuration.
    """
    output_shape = tuple(layer.compute_output_shape(tuple(input_shape)))
    channels = int(input_shape[-1])
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = math.prod(layer.kernel_size) * channels * layer.depth_multiplier
        bias = channels * layer.depth_multiplier if layer.use_bias else 0
    elif isinstance(layer, keras.layers.Conv2D):
        kernel = math.prod(layer.kernel_size) * (channels // layer.groups) * layer.filters
        bias = layer.filters if layer.use_bias else 0
    elif isinstance(layer, keras.layers.Dense):
        kernel = channels * layer.units
        bias = layer.units if layer.use_bias else 0
    else:
        return 0, 0, output_shape
    positions = math.prod(int(d) for d in output_shape[1:-1])
    return positions * kernel, kernel + bias, output_shape


def chain_cost(layers: list[keras.layers.Layer], input_shape: tuple) -> tuple[int, int]:
    """``(macs, params)`` of ``layers`` applied one after the other to ``input_shape``."""
    macs = params = 0
    shape = tuple(input_shape)
    for layer in layers:
        layer_macs, layer_params, shape = layer_cost(layer, shape)
        macs += layer_macs
        params += layer_params
    return macs, params


def model_macs(model: keras.Model) -> int:
    """MACs of one forward pass (batch 1) of a built model: the sum over every layer call."""
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for node in layer._inbound_nodes:
            tensors = node.input_tensors
            if len(tensors) != 1:
                continue
            total += layer_cost(layer, tuple(tensors[0].shape))[0]
    return total
