"""Lowering rules: how a custom Keras layer becomes TFLite ops at conversion time.

A compression method registers one rule per layer class it owns::

    register_lowering(BinaryConv2D, lower_binary_conv2d)

A rule is ``rule(layer, inputs) -> outputs``: it is called instead of ``layer.call`` while
the converter traces the model, and emits whatever graph the ``.tflite`` should contain
(typically a ``tf.function`` with ``experimental_implements`` that the converter fuses
into one ``CUSTOM`` op; ``custom_op=`` names it, for messages). The converter looks rules
up by layer class only; it knows no method by name. A lowered layer is not quantized by
full-integer conversion (:func:`tfcompress.convert.int8_blockers` lists them).

A method may also register a flatbuffer pass, ``pass(tflite_bytes) -> tflite_bytes``, run on
every converted file (e.g. the binary package carries activations bit-packed between binary
convolutions); a pass returns its input unchanged when it has nothing to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras

LoweringRule = Callable[..., object]
FlatbufferPass = Callable[[bytes], bytes]
_RULES: dict[type, LoweringRule] = {}
_CUSTOM_OPS: dict[type, str] = {}
_PASSES: list[FlatbufferPass] = []


def register_lowering(layer_class: type, rule: LoweringRule, custom_op: str | None = None) -> None:
    """Use ``rule(layer, inputs, **call_kwargs)`` for every ``layer_class`` layer when converting.

    ``custom_op`` names the ``CUSTOM`` op the rule emits (shown in messages about the layer).
    """
    _RULES[layer_class] = rule
    if custom_op is not None:
        _CUSTOM_OPS[layer_class] = custom_op


def register_flatbuffer_pass(flatbuffer_pass: FlatbufferPass) -> None:
    """Run ``flatbuffer_pass`` on every converted ``.tflite`` (once, in registration order)."""
    if flatbuffer_pass not in _PASSES:
        _PASSES.append(flatbuffer_pass)


def apply_flatbuffer_passes(tflite_bytes: bytes) -> bytes:
    """``tflite_bytes`` after every registered flatbuffer pass."""
    for flatbuffer_pass in _PASSES:
        tflite_bytes = flatbuffer_pass(tflite_bytes)
    return tflite_bytes


def _registered_class(layer: keras.layers.Layer) -> type | None:
    """``layer``'s class or its nearest base class with a rule, if any."""
    return next((cls for cls in type(layer).__mro__ if cls in _RULES), None)


def lowering_rule(layer: keras.layers.Layer) -> LoweringRule | None:
    """The rule registered for ``layer``'s class or its nearest registered base class."""
    cls = _registered_class(layer)
    return None if cls is None else _RULES[cls]


def lowered_custom_op(layer: keras.layers.Layer) -> str | None:
    """The custom op named when ``layer``'s rule was registered (``None``: no rule, or not named)."""
    return _CUSTOM_OPS.get(_registered_class(layer))


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)]


@contextlib.contextmanager
def lowered(model: keras.Model) -> Iterator[list[keras.layers.Layer]]:
    """Within the block, layers with a rule run their rule instead of ``call``.

    The rule is bound on the layer instance and removed on exit, so the model is the same
    object with the same behaviour afterwards. Yields the layers that were lowered.
    """
    patched = []
    try:
        for layer in _all_layers(model):
            rule = lowering_rule(layer)
            if rule is None:
                continue
            layer.call = _bind(rule, layer)
            patched.append(layer)
        yield patched
    finally:
        for layer in patched:
            del layer.call


def _bind(rule: LoweringRule, layer: keras.layers.Layer):
    def call(inputs, *args, **kwargs):
        return rule(layer, inputs, *args, **kwargs)

    return call
