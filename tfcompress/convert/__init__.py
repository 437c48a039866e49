"""Keras -> TFLite conversion, with a registry of lowering rules for custom layers."""

from tfcompress.convert.converter import convert, load_keras_model, to_tflite
from tfcompress.convert.lowering import lowered, lowering_rule, register_lowering

__all__ = ["convert", "load_keras_model", "lowered", "lowering_rule", "register_lowering", "to_tflite"]
