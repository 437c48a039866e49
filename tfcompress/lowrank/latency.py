"""Measured TFLite latency, whole models and single layers, for latency targets.

A model is converted with the stock converter (:func:`tfcompress.convert.to_tflite`) and
run through :func:`tfcompress.runtime.Interpreter` at batch 1; the latency is the median
of ``runs`` timed invokes after ``warmup`` untimed ones. A single layer (or its
replacement chain) is measured as a one-layer model on the layer's input shape, so a
layer's latency saving can be measured without converting the whole network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np


def tflite_latency_ms(model: keras.Model, threads: int = 1, runs: int = 30, warmup: int = 3) -> float:
    """Median batch-1 latency of ``model`` converted to float ``.tflite``, in milliseconds."""
    from tfcompress.convert import to_tflite
    from tfcompress.runtime import Interpreter

    interpreter = Interpreter(model_content=to_tflite(model), num_threads=threads)
    detail = interpreter.get_input_details()[0]
    data = np.random.default_rng(0).uniform(0, 1, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], data)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def chain_model(layers: Sequence[keras.layers.Layer], input_shape: tuple) -> keras.Model:
    """A model that applies fresh copies of ``layers`` (with their weights) one after the other.

    The layers must be built; the copies are made from their configs and weights, so the
    layers of the source model are not attached to the new one.
    """
    inputs = keras.Input(tuple(input_shape[1:]))
    x = inputs
    copies = []
    for layer in layers:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copies.append((copy, layer))
    for copy, layer in copies:
        copy.set_weights(layer.get_weights())
    return keras.Model(inputs, x)
