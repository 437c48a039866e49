"""Measuring a model as it ships: top-1 accuracy, bytes on disk, and batch-1 latency.

A ``.tflite`` is measured through :func:`tfcompress.runtime.Interpreter` (the real
runtime, with the project's op library when the model needs it); a ``.keras`` file through
Keras. Latency is per image at batch 1: ``warmup`` untimed runs, then the median and the
90th percentile of ``runs`` timed ones.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tfcompress.data import discover_classes, load_split, resolve_data_dir
from tfcompress.errors import DataError, ModelFileError
from tfcompress.fileio import write_text_atomic


@dataclass
class EvalResult:
    """What :func:`evaluate` measured; ``to_json`` gives the ``--json`` file."""

    model: str
    format: str
    accuracy: float
    size_bytes: int
    latency_ms_median: float
    latency_ms_p90: float
    threads: int
    images: int
    skipped_images: int
    split: str
    runtime: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


class TFLiteClassifier:
    """Batch-1 classification through a TFLite interpreter, quantizing inputs as needed."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1, model_content: bytes | None = None):
        from tfcompress.runtime import Interpreter

        self.interpreter = Interpreter(path, model_content=model_content, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.runtime = type(self.interpreter).__module__.split(".")[0]

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image (H, W, 3) in [0, 255] as the model's input tensor (1, H, W, 3)."""
        dtype = self.input["dtype"]
        batch = image[None].astype(np.float32)
        if dtype == np.float32:
            return batch
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """Invoke on a prepared input; return the float output (dequantized if needed)."""
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero_point = self.output["quantization"]
            out = (out.astype(np.float32) - zero_point) * scale
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Outputs for a stack of images, one invoke per image."""
        return np.concatenate([self.run(self.prepare(image)) for image in images])


class KerasClassifier:
    """Classification with a ``.keras`` model, with the same interface as :class:`TFLiteClassifier`."""

    runtime = "keras"

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import tensorflow as tf

        from tfcompress.convert import load_keras_model

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already started in this process: its setting stays
            current = tf.config.threading.get_intra_op_parallelism_threads()
            if current != threads:
                warnings.warn(
                    f"TensorFlow is already running with {current or 'all'} intra-op threads; "
                    f"Keras latency is not measured at {threads} thread(s)",
                    stacklevel=2,
                )
        self.model = load_keras_model(path)
        self.input = {"shape": (1, *self.model.inputs[0].shape[1:])}
        self.output = {"shape": (1, *self.model.outputs[0].shape[1:])}
        self._serve = tf.function(lambda x: self.model(x, training=False))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return image[None].astype(np.float32)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        return self._serve(prepared).numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(images.astype(np.float32), batch_size=32, verbose=0)


def _time_runs(run, runs: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times)), float(np.percentile(times, 90))


def evaluate(
    model_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    limit: int | None = None,
) -> EvalResult:
    """Top-1 accuracy on ``split``, file size, and batch-1 latency of a ``.keras`` or ``.tflite``.

    Raises:
        ModelFileError: the model file is missing, corrupt, or of an unknown kind.
        DataError: the model's outputs are not one per class folder of the data, or see
            :func:`tfcompress.data.load_split`.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if path.suffix == ".tflite":
        classifier = TFLiteClassifier(path, threads)
    elif path.suffix == ".keras":
        classifier = KerasClassifier(path, threads)
    else:
        raise ModelFileError(f"{path}: expected a .tflite or .keras file")
    root = resolve_data_dir(data_dir)
    classes, folders = int(classifier.output["shape"][-1]), len(discover_classes(root))
    if classes != folders:
        raise DataError(f"model has {classes} classes, {root} has {folders} class folders")
    data = load_split(root, split, int(classifier.input["shape"][1]), limit)
    predictions = classifier.predict(data.images).argmax(axis=1)
    prepared = classifier.prepare(data.images[0])
    median, p90 = _time_runs(lambda: classifier.run(prepared), runs, warmup)
    return EvalResult(
        model=str(path),
        format=path.suffix[1:],
        accuracy=float(np.mean(predictions == data.labels)),
        size_bytes=path.stat().st_size,
        latency_ms_median=median,
        latency_ms_p90=p90,
        threads=threads,
        images=len(data),
        skipped_images=len(data.skipped),
        split=split,
        runtime=classifier.runtime,
    )


def save_result(result: EvalResult, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``result`` as JSON, atomically."""
    return write_text_atomic(path, result.to_json(), force)
