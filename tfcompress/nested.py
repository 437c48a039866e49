"""Inlining nested models: a backbone called as one layer becomes the layers it is made of.

The usual transfer-learning model wraps a ``keras.applications`` backbone as a single layer::

    base = keras.applications.MobileNetV2(include_top=False, weights="imagenet")
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(base(inputs)))

To a method that walks ``model.layers`` the whole backbone is one opaque layer: it would be
left float (PQ, weight sharing) or refused (slimming, low rank). :func:`inline_submodels`
rebuilds such a model as one flat Functional graph: every layer of every nested Functional or
Sequential model is re-created from its config, given a copy of its weights and called where
the sub-model was called, so the flat model computes exactly what the nested one did. The
given model is only read.
"""

from __future__ import annotations

import keras

from tfcompress.errors import TfcompressError


def submodels(model: keras.Model) -> list[keras.Model]:
    """The Functional or Sequential models used as layers of ``model`` (directly, not recursively)."""
    return [layer for layer in getattr(model, "layers", []) if isinstance(layer, keras.Model)]


def _as_functional(model: keras.Model) -> keras.Model:
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise TfcompressError(f"model {model.name!r} is not built; call it on data or give it an Input")
        return model._functional  # the graph Keras keeps for a built Sequential
    if not hasattr(model, "_nodes_by_depth"):
        raise TfcompressError(
            f"sub-model {model.name!r} is subclassed: its layers cannot be inlined into one graph "
            "(rebuild it as a Functional or Sequential model)"
        )
    return model


def _check_called_once(model: keras.Model) -> None:
    for sub in submodels(model):
        calls = [node for node in sub._inbound_nodes if node.operation is sub and _node_in(model, node)]
        if len(calls) > 1:
            raise TfcompressError(
                f"model {model.name!r} calls sub-model {sub.name!r} {len(calls)} times (shared weights); "
                "inlining it would unshare them, so it is not supported"
            )


def _node_in(model: keras.Model, node) -> bool:
    graph = _as_functional(model)
    return any(node is other for nodes in graph._nodes_by_depth.values() for other in nodes)


def inline_submodels(model: keras.Model) -> keras.Model:
    """``model`` itself when no layer is a model; else a new, flat Functional model computing the same.

    Layer names are kept; a name that two sub-models share gets the sub-model's name as a
    prefix (``backbone_conv1``).

    Raises:
        TfcompressError: a subclassed sub-model, a sub-model called more than once (shared
            weights), or a Sequential that was never built.
    """
    if not submodels(model):
        return model
    outer = _as_functional(model)
    outer_ids = {id(layer) for layer in outer.layers}
    used = {layer.name for layer in outer.layers if not isinstance(layer, keras.Model)}  # the outer names win
    originals: dict[int, keras.layers.Layer] = {}
    prefix: list[str] = []

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            return layer  # never called as a layer: call_layer inlines it
        config = layer.get_config()
        if id(layer) not in outer_ids:
            if config["name"] in used:
                config["name"] = "_".join([*prefix, config["name"]])
            used.add(config["name"])
        clone = layer.__class__.from_config(config)
        originals[id(clone)] = layer
        return clone

    def call_layer(layer: keras.layers.Layer, *args, **kwargs):
        if not isinstance(layer, keras.Model):
            return layer(*args, **kwargs)
        _check_called_once(layer)
        inner = _as_functional(layer)
        prefix.append(layer.name)
        try:  # what keras.models.clone_model does, on the outer graph's tensors instead of new Inputs
            return inner._run_through_graph(args[0], operation_fn=clone_layer, call_fn=call_layer)
        finally:
            prefix.pop()

    _check_called_once(model)
    flat = keras.models.clone_model(outer, clone_function=clone_layer, call_function=call_layer)
    flat = keras.Model(flat.input, flat.output, name=model.name)
    for layer in flat.layers:
        original = originals.get(id(layer))
        if original is not None and original.weights:
            layer.set_weights(original.get_weights())
    return flat
