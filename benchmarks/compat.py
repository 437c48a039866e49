"""Compatibility matrix: every compression method and both conversions on ``keras.applications`` models.

    nice -n 5 .venv/bin/python benchmarks/compat.py [--models MobileNetV2,...] [--methods pq,slim,...]
        [--image-size 64]

Writes ``benchmarks/results/compat.json`` and ``compat.md`` (the whole matrix; a run of some
models or methods replaces those cells and keeps the others).

Each model is built with random weights (``weights=None``: nothing is downloaded), 5 classes
and logits out (``classifier_activation=None``), at ``--image-size`` pixels. The columns:

- ``float`` / ``int8``: :func:`tfcompress.convert.to_tflite` of the model as it is (int8:
  full-integer, calibrated on :data:`CALIBRATION` random images), run through
  :func:`tfcompress.runtime.Interpreter` on :data:`CHECKED` random images;
- one column per entry of :data:`METHODS`: the method through the public API (no
  finetuning, few EM iterations: this checks structure, not accuracy), then the float
  ``.tflite`` of its result.

A cell is ``ok`` when the ``.tflite`` logits match the Keras model's within the tolerance
(:func:`logit_error`: the largest absolute difference over the largest absolute Keras logit;
:data:`FLOAT_TOLERANCE`, :data:`INT8_TOLERANCE`), ``ok, N skipped`` when the method left N
layers with kernels as they were (each listed with its reason under the table),
``unsupported`` when the method does not apply to the model at all (the reason is given), and
``FAILED`` / ``MISMATCH`` otherwise: those are bugs.

To add a column (e.g. a ``tfcompress compress --recipe`` recipe), add an entry to
:data:`METHODS`: ``name -> callable(model, images) -> (compressed model, skipped layers)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from tfcompress.batchnorm import batchnorm_layers  # noqa: E402
from tfcompress.errors import UnsupportedLayerError  # noqa: E402
from tfcompress.fileio import write_text_atomic  # noqa: E402
from tfcompress.skipped import SkippedLayer, skipped_layers  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLASSES = 5
IMAGE_SIZE = 64
CALIBRATION = 8  # random images: int8 ranges, PQ Gram matrices
CHECKED = 4  # random images whose logits are compared
FLOAT_TOLERANCE = 1e-3
INT8_TOLERANCE = 0.75  # int8 of a random network is noisy: this checks the file follows Keras
COMMAND = "nice -n 5 .venv/bin/python -u benchmarks/compat.py"

Result = tuple[keras.Model, list[SkippedLayer]]


def _application(name: str, **options) -> Callable[[int], keras.Model]:
    def build(size: int) -> keras.Model:
        constructor = getattr(keras.applications, name)
        return constructor(
            input_shape=(size, size, 3), weights=None, classes=CLASSES, classifier_activation=None, **options
        )

    return build


def _backbone(name: str, **options) -> Callable[[int], keras.Model]:
    """The transfer-learning form: the application without its top, called as one layer, then pooling and a head."""

    def build(size: int) -> keras.Model:
        constructor = getattr(keras.applications, name)
        base = constructor(input_shape=(size, size, 3), weights=None, include_top=False, **options)
        inputs = keras.Input((size, size, 3))
        features = keras.layers.GlobalAveragePooling2D()(base(inputs))
        return keras.Model(inputs, keras.layers.Dense(CLASSES)(features), name=f"{name}_backbone")

    return build


#: Model name -> builder(image size). The mobile picks of ``keras.applications``, and one as a nested backbone.
MODELS: dict[str, Callable[[int], keras.Model]] = {
    "MobileNetV2": _application("MobileNetV2", alpha=0.35),
    "MobileNetV3Small": _application("MobileNetV3Small"),
    "MobileNetV3Large": _application("MobileNetV3Large"),
    "EfficientNetB0": _application("EfficientNetB0"),
    "EfficientNetV2B0": _application("EfficientNetV2B0"),
    "ResNet50": _application("ResNet50"),
    "DenseNet121": _application("DenseNet121"),
    "MobileNetV2-nested": _backbone("MobileNetV2", alpha=0.35),
}


def with_measured_statistics(model: keras.Model, images: np.ndarray, seed: int = 0) -> keras.Model:
    """Give ``model``'s BatchNorms spread scales and the statistics of ``images``, like a trained model's.

    Fresh ``weights=None`` models have every ``gamma = 1`` (slimming would rank all channels
    equal) and moving statistics ``0 / 1`` that do not fit their activations, which then
    vanish with depth (MobileNetV2's logits are about 1e-9): a conversion check on them checks
    nothing. So ``gamma ~ U(0.5, 1.5)``, ``beta ~ N(0, 0.1)``, and one forward pass in training
    mode with momentum 0 sets each moving mean and variance to its input's batch statistics.
    Changes ``model`` in place and returns it.
    """
    rng = np.random.default_rng(seed)
    norms = list(batchnorm_layers(model))  # a nested backbone's too
    for layer in norms:
        if layer.scale:
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
        if layer.center:
            layer.beta.assign(rng.normal(0.0, 0.1, layer.beta.shape))
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return model


def product_quantization(model: keras.Model, images: np.ndarray, activation_aware: bool = False) -> Result:
    """:class:`tfcompress.pq.ProductQuantizer`: k=16, 2 iterations of plain k-means, no finetuning.

    Plain k-means (the default here) skips capturing each layer's inputs from the
    partly quantized model, which would take minutes on the larger models here; the
    activation-aware path is tested on small models (``tests/test_pq_quantize.py``,
    ``tests/test_method_skips.py``).
    """
    from tfcompress.pq import ProductQuantizer

    quantizer = ProductQuantizer(
        model,
        images,
        n_centroids=16,
        n_centroids_dense=16,
        activation_aware=activation_aware,
        em_iterations=2,
        layer_steps=0,
        global_steps=0,
        verbose=0,
    )
    return quantizer.run(), quantizer.skipped


def pruning(model: keras.Model, images: np.ndarray) -> Result:
    """:func:`tfcompress.pruning.prune` at 80% (masks at step 0) then :func:`~tfcompress.pruning.strip`."""
    from tfcompress.pruning import ConstantSparsity, prune, strip

    pruned = prune(model, ConstantSparsity(0.8))
    return strip(pruned), skipped_layers(pruned)


def deep_compression(model: keras.Model, images: np.ndarray) -> Result:
    """80% pruning, then :func:`tfcompress.pruning.deep_compress` (5-bit convs and dense layers)."""
    from tfcompress.pruning import deep_compress

    pruned, _ = pruning(model, images)
    shared = deep_compress(pruned, conv_bits=5, dense_bits=5)
    return shared, skipped_layers(shared)


def slimming(model: keras.Model, images: np.ndarray) -> Result:
    """:func:`tfcompress.pruning.slim.slim` of half of the BatchNorm channels (no penalty training)."""
    from tfcompress.pruning.slim import slim

    thin = slim(model, 0.5)
    return thin, skipped_layers(thin)


def low_rank(model: keras.Model, images: np.ndarray) -> Result:
    """:func:`tfcompress.lowrank.factorize`: Tucker-2 (SVD for 1x1 and Dense), 90% of the energy."""
    from tfcompress.lowrank import factorize

    small = factorize(model, "tucker2", energy=0.9)
    return small, skipped_layers(small)


#: Column name -> method(model, calibration images) -> (compressed model, skipped layers).
METHODS: dict[str, Callable[[keras.Model, np.ndarray], Result]] = {
    "pq": product_quantization,
    "prune 80%": pruning,
    "deep_compress": deep_compression,
    "slim 0.5": slimming,
    "tucker2 0.9": low_rank,
}


@dataclass
class Cell:
    """One model x column outcome."""

    status: str  # ok | unsupported | FAILED | MISMATCH
    error: float | None = None  # logit_error of the .tflite against Keras
    skipped: list[dict] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    def text(self) -> str:
        """The table cell."""
        if self.status == "ok":
            return f"ok, {len(self.skipped)} skipped" if self.skipped else "ok"
        if self.status == "MISMATCH":
            return f"**MISMATCH** ({self.error:.2g})"
        return f"**{self.status}**" if self.status == "FAILED" else self.status


def logit_error(reference: np.ndarray, other: np.ndarray) -> float:
    """``max |other - reference| / max |reference|`` over the batch (0 when they agree)."""
    return float(np.max(np.abs(other - reference)) / max(float(np.max(np.abs(reference))), 1e-12))


def tflite_logits(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """Logits of the ``.tflite`` through :func:`tfcompress.runtime.Interpreter`, one image at a time.

    A quantized input (``uint8`` / ``int8``) is fed ``round(x / scale + zero_point)``.
    """
    from tfcompress.runtime import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        x = image[None]
        if source["dtype"] != np.float32:
            scale, zero = source["quantization"]
            info = np.iinfo(source["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interpreter.set_tensor(source["index"], x.astype(source["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(sink["index"]).astype(np.float32)
        if sink["dtype"] != np.float32:
            scale, zero = sink["quantization"]
            y = (y - zero) * scale
        outputs.append(y.reshape(-1))
    return np.stack(outputs)


def check_conversion(model: keras.Model, images: np.ndarray, int8: bool) -> tuple[float, str]:
    """Convert ``model``, run the file on the first :data:`CHECKED` images: ``(logit error, status)``."""
    from tfcompress.convert import to_tflite

    checked = images[:CHECKED]
    expected = keras.ops.convert_to_numpy(model(checked, training=False))
    error = logit_error(expected, tflite_logits(to_tflite(model, int8=int8, calibration=images), checked))
    return error, "ok" if error <= (INT8_TOLERANCE if int8 else FLOAT_TOLERANCE) else "MISMATCH"


def run_cell(model: keras.Model, images: np.ndarray, column: str) -> Cell:
    """One cell: the conversion column, or the method then the float conversion of its result."""
    start = time.perf_counter()
    try:
        if column in ("float", "int8"):
            error, status = check_conversion(model, images, column == "int8")
            skipped: list[SkippedLayer] = []
        else:
            compressed, skipped = METHODS[column](model, images)
            error, status = check_conversion(compressed, images, False)
    except UnsupportedLayerError as exc:
        return Cell("unsupported", reason=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a bug: recorded in the matrix, with its traceback on stderr
        traceback.print_exc()
        return Cell("FAILED", reason=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    return Cell(status, error, [s._asdict() for s in skipped], seconds=time.perf_counter() - start)


def random_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Uniform random pixels in [0, 255] (the models are random too: this checks structure)."""
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def run_matrix(
    models: list[str], columns: list[str], image_size: int = IMAGE_SIZE, log=print, on_model=None
) -> dict[str, dict[str, Cell]]:
    """``{model: {column: Cell}}`` for the given models and columns; ``on_model(name, cells)`` after each model."""
    images = random_images(CALIBRATION, image_size)
    matrix: dict[str, dict[str, Cell]] = {}
    for name in models:
        keras.utils.set_random_seed(0)
        model = with_measured_statistics(MODELS[name](image_size), images)
        matrix[name] = {}
        for column in columns:
            cell = run_cell(model, images, column)
            matrix[name][column] = cell
            log(f"{name:18s} {column:14s} {cell.text():30s} {cell.seconds:6.1f}s {cell.reason[:120]}")
        if on_model is not None:
            on_model(name, matrix[name])
        keras.backend.clear_session()
    return matrix


def _grouped(skipped: list[dict]) -> list[str]:
    """``reason (N): layer, layer, ...`` lines, one per distinct reason, most frequent first."""
    by_reason: dict[str, list[str]] = {}
    for record in skipped:
        by_reason.setdefault(record["reason"], []).append(record["layer"])
    lines = []
    for reason, layers in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(f"`{name}`" for name in layers[:6]) + (", ..." if len(layers) > 6 else "")
        lines.append(f"{reason} ({len(layers)}): {shown}")
    return lines


def markdown(results: dict) -> str:
    """``compat.md``: the matrix, then the skipped layers and the reasons of the other cells."""
    matrix = results["matrix"]
    columns = list(dict.fromkeys(column for cells in matrix.values() for column in cells))
    lines = [
        "# Compatibility matrix",
        "",
        f"`{COMMAND}` ({results['seconds']:.0f} s on this machine). `keras.applications` models with random "
        f"weights, {results['image_size']}x{results['image_size']} inputs, {CLASSES} classes, logits out. "
        f"Each method runs through the public API without finetuning (structure, not accuracy), then its "
        f"result is converted to a float `.tflite`; `float` / `int8` convert the model itself (int8 calibrated "
        f"on {CALIBRATION} random images). A cell is ok when the `.tflite` logits, run through "
        f"`tfcompress.runtime.Interpreter` on {CHECKED} random images, match Keras within "
        f"{FLOAT_TOLERANCE:g} (int8: {INT8_TOLERANCE:g}) of the largest logit (the measured error is in "
        "`compat.json`); N skipped: N layers with a kernel left as they were, listed below with the reason.",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, cells in matrix.items():
        texts = [Cell(**cells[c]).text() if c in cells else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(texts) + " |")
    notes = ["", "## Layers left as they were", ""]
    problems = []
    for name, cells in matrix.items():
        for column, data in cells.items():
            cell = Cell(**data)
            if cell.skipped:
                notes.append(f"- **{name} / {column}**: {len(cell.skipped)} layer(s)")
                notes.extend(f"  - {line}" for line in _grouped(cell.skipped))
            if cell.status != "ok":
                problems.append(f"- **{name} / {column}**: {cell.status}: {cell.reason or f'error {cell.error:.3g}'}")
    if problems:
        notes += ["", "## Unsupported and failed cells", "", *problems]
    return "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument(
        "--columns", default=",".join(["float", "int8", *METHODS]), help="float, int8 and the METHODS names"
    )
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--output", type=Path, default=RESULTS / "compat.json", help="the .md goes beside it")
    args = parser.parse_args(argv)
    models, columns = args.models.split(","), args.columns.split(",")
    unknown = [m for m in models if m not in MODELS] + [c for c in columns if c not in ("float", "int8", *METHODS)]
    if unknown:
        parser.error(f"unknown model or column: {', '.join(unknown)}")
    results = {"image_size": args.image_size, "matrix": {}, "seconds": 0.0}
    if args.output.is_file():
        previous = json.loads(args.output.read_text())
        if previous.get("image_size") == args.image_size:
            results = previous
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def save(name: str, cells: dict[str, Cell]) -> None:
        """Merge one model's cells into the results and rewrite both files (an interrupted run keeps them)."""
        results["matrix"].setdefault(name, {}).update({column: asdict(cell) for column, cell in cells.items()})
        results["matrix"] = {model: results["matrix"][model] for model in MODELS if model in results["matrix"]}
        results["seconds"] = sum(c["seconds"] for row in results["matrix"].values() for c in row.values())
        write_text_atomic(args.output, json.dumps(results, indent=1) + "\n", force=True)
        write_text_atomic(args.output.with_suffix(".md"), markdown(results), force=True)

    start = time.perf_counter()
    run_matrix(models, columns, args.image_size, on_model=save)
    print(f"this run: {time.perf_counter() - start:.0f} s; wrote {args.output} and {args.output.with_suffix('.md')}")
    return (
        0
        if all(cell["status"] in ("ok", "unsupported") for c in results["matrix"].values() for cell in c.values())
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
