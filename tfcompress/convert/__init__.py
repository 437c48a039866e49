"""Keras -> TFLite conversion, with a registry of lowering rules for custom layers."""

from tfcompress.convert.converter import (
    SPARSE_THRESHOLD,
    convert,
    int8_blockers,
    load_keras_model,
    sparse_fraction,
    to_tflite,
)
from tfcompress.convert.lowering import lowered, lowering_rule, register_lowering

__all__ = [
    "SPARSE_THRESHOLD",
    "convert",
    "int8_blockers",
    "load_keras_model",
    "lowered",
    "lowering_rule",
    "register_lowering",
    "sparse_fraction",
    "to_tflite",
]
