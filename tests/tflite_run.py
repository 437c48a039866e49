"""Shared test helper: run a ``.tflite`` on a whole batch through the project's runtime."""

from __future__ import annotations

import numpy as np

from tfcompress import runtime


def run_batch(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Run with the input resized to ``x``'s batch (ops' Prepare sees batch > 1); the first output."""
    interpreter = runtime.Interpreter(model_content=model_bytes, runtime="ai_edge_litert")
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
