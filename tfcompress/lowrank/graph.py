"""Rebuilding a Functional model with some layers replaced by small chains of layers.

The model's graph is walked in topological order (``keras.models.clone_model`` with a
``call_function``): a layer to replace is swapped for its chain, called on the same
input; every other layer is re-created from its config and gets a copy of the original
weights, so the rest of the model computes exactly what it did. The input model is only
read, never changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.nested import inline_submodels, submodels


def as_functional(model: keras.Model) -> keras.Model:
    """``model`` itself when Functional; a built Sequential as a Functional over the same layers; a model
    with nested models (a backbone used as a layer) inlined into one graph (:mod:`tfcompress.nested`).

    Raises:
        TfcompressError: a subclassed model, or a Sequential model that was never built.
    """
    if submodels(model):
        return inline_submodels(model)
    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError) as error:
            raise TfcompressError(f"model {model.name!r} is not built; call it on data or give it an Input") from error
        if not inputs:
            raise TfcompressError(f"model {model.name!r} is not built; call it on data or give it an Input")
        return keras.Model(inputs, outputs, name=model.name)
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise TfcompressError(
            f"model {getattr(model, 'name', model)!r} is a subclassed model; low-rank factorization "
            "rewrites Functional and Sequential models only"
        )
    return model


def replace_layers(
    model: keras.Model,
    chains: Mapping[str, Sequence[keras.layers.Layer]],
    kernels: Mapping[str, Sequence[np.ndarray]],
) -> keras.Model:
    """A new model where each layer named in ``chains`` is replaced by its chain of layers.

    Args:
        model: a Functional (or built Sequential) model; it is not modified.
        chains: layer name -> the unbuilt layers that replace it, first to last.
        kernels: layer name -> the kernels of those layers, in the same order; the last
            layer of a chain gets the original layer's bias when it has one.

    Raises:
        TfcompressError: a name in ``chains`` that is not a layer of ``model``.
    """
    model = as_functional(model)
    names = {layer.name for layer in model.layers}
    missing = sorted(set(chains) - names)
    if missing:
        raise TfcompressError(f"no layer named {', '.join(map(repr, missing))} in model {model.name!r}")
    originals: dict[int, keras.layers.Layer] = {}

    def clone_layer(layer):
        clone = layer.__class__.from_config(layer.get_config())
        originals[id(clone)] = layer
        return clone

    def call_layer(layer, *args, **kwargs):
        if layer.name not in chains:
            return layer(*args, **kwargs)
        x = args[0]
        for step in chains[layer.name]:
            x = step(x)
        return x

    rebuilt = keras.models.clone_model(model, clone_function=clone_layer, call_function=call_layer)
    by_name = {layer.name: layer for layer in model.layers}
    for layer in rebuilt.layers:
        original = originals.get(id(layer))
        if original is not None and original.name not in chains:
            layer.set_weights(original.get_weights())
    for name, chain in chains.items():
        original = by_name[name]
        for step, kernel in zip(chain, kernels[name], strict=True):
            step.kernel.assign(kernel)
        if original.use_bias:
            chain[-1].bias.assign(original.bias)
    return rebuilt
