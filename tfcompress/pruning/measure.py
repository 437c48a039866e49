"""Measurements for the pruning cards and benchmark: top-1 through the runtime, bytes, latency, params, MACs."""

from __future__ import annotations

import os
from pathlib import Path

import keras


def measure_tflite(path: str | os.PathLike, data_dir=None, threads=(1, 2), runs: int = 50) -> dict:
    """Top-1 on ``test.txt`` through :func:`tfcompress.runtime.Interpreter`, bytes, median latency per thread count."""
    from tfcompress.evaluate import evaluate
    from tfcompress.pruning.export import gzip_size

    result: dict = {
        "file": str(path),
        "bytes": Path(path).stat().st_size,
        "gzip_bytes": gzip_size(Path(path).read_bytes()),
    }
    for index, count in enumerate(threads):
        # top-1 once (first thread count); the other thread counts only time the model
        evaluated = evaluate(path, data_dir, "test", threads=count, runs=runs, limit=None if index == 0 else 1)
        if index == 0:
            result["top1"] = evaluated.accuracy
            result["images"] = evaluated.images
        result[f"latency_ms_{count}t"] = evaluated.latency_ms_median
        result[f"latency_p90_ms_{count}t"] = evaluated.latency_ms_p90
    return result


def cached_measure(path: str | os.PathLike, cache: str | os.PathLike, **kwargs) -> dict:
    """:func:`measure_tflite`, reusing ``cache`` (JSON) when it was written for a file of the same size."""
    import json

    cache = Path(cache)
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("bytes") == Path(path).stat().st_size:
            return stored
    result = measure_tflite(path, **kwargs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=2))
    return result


def model_counts(model: keras.Model) -> dict:
    """Parameters, nonzero parameters and MACs (batch 1) of a Keras model."""
    import numpy as np

    from tfcompress.lowrank.cost import model_macs

    nonzero = sum(int(np.count_nonzero(w)) for w in model.get_weights())
    return {"params": int(model.count_params()), "nonzero_params": nonzero, "macs": int(model_macs(model))}
