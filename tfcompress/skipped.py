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


def describe_skipped(records: Iterable[SkippedLayer], prefix: str = "left as they were: ") -> str:
    """One line: ``prefix`` then ``name (Kind: why)`` per record; empty when there is none."""
    records = list(records)
    return prefix + ", ".join(map(str, records)) if records else ""
