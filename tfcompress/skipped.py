"""Layers a compression method left as they were, and why: one record type for every method.

A method never fails a whole model because of one layer it cannot handle: it leaves that
layer as it was and records a :class:`SkippedLayer`, a ``(layer, reason)`` pair whose reason
starts with the layer's class (``str`` gives ``name (Kind: why)``, the form of ``tfcompress
prune``'s ``left dense:`` line). The records are kept by the method's driver object or report
(``ProductQuantizer.skipped``, ``SlimReport.skipped``, ``Plan.skipped``) and attached to the
model it returns; :func:`skipped_layers` reads them back from the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import keras


class SkippedLayer(NamedTuple):
    """One layer a method left as it was: its name and ``"Kind: why"``."""

    layer: str
    reason: str

    @classmethod
    def of(cls, layer: keras.layers.Layer, why: str) -> SkippedLayer:
        """The record for ``layer``: ``why`` prefixed with the layer's class name."""
        return cls(layer.name, f"{type(layer).__name__}: {why}")

    def __str__(self) -> str:
        return f"{self.layer} ({self.reason})"


def has_kernel(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` owns a kernel (conv, depthwise, dense, ...): what a method could compress."""
    return any(v.path.endswith("kernel") for v in layer.weights)


def attach_skipped(model: keras.Model, records: Iterable[SkippedLayer]) -> keras.Model:
    """Record on ``model`` the layers the method that made it left as they were; returns ``model``."""
    model._tfc_skipped_layers = tuple(records)
    return model


def skipped_layers(model: keras.Model) -> list[SkippedLayer]:
    """The records :func:`attach_skipped` put on ``model`` (empty for any other model)."""
    return list(getattr(model, "_tfc_skipped_layers", ()))


#: Layer names shown per reason before "and N more".
NAMES_SHOWN = 3


def grouped(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """``(layer, reason)`` pairs as one line per reason, most frequent first: ``Kind: why (16 layers: a, b, c
    and 13 more)``."""
    by_reason: dict[str, list[str]] = {}
    for layer, reason in pairs:
        by_reason.setdefault(reason, []).append(layer)
    lines = []
    for reason, layers in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(layers[:NAMES_SHOWN]) + (
            f" and {len(layers) - NAMES_SHOWN} more" if len(layers) > NAMES_SHOWN else ""
        )
        lines.append(f"{reason} ({len(layers)} layer{'s' * (len(layers) > 1)}: {shown})")
    return lines


def split_message(message: str) -> tuple[str, str]:
    """``(layer, reason)`` of a skip message, ``"name (Kind: why)"`` or ``"name: reason"``."""
    name, paren, rest = message.partition(" (")
    if paren and rest.endswith(")") and ":" not in name:
        return name, rest[:-1]
    name, _, reason = message.partition(": ")
    return name, reason


def describe_skipped(records: Iterable[SkippedLayer], prefix: str = "left as they were: ") -> str:
    """One line: ``prefix`` then the records grouped by reason (:func:`grouped`); empty when there is none."""
    records = list(records)
    return prefix + "; ".join(grouped((r.layer, r.reason) for r in records)) if records else ""
