"""Keras 3 -> ``.tflite``: float and full-integer post-training quantization.

The model is traced in inference mode with the lowering rules of
:mod:`tfcompress.convert.lowering` in force, and handed to the TFLite converter as a
concrete function. Custom ops are allowed so that lowered layers become ``CUSTOM`` ops.

Full-integer quantization (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference"): weights are int8 per channel,
activations int8 per tensor with ranges calibrated on a representative data set; the
input is ``uint8`` (raw pixels, since the zoo models rescale inside the graph) and the
output stays ``float32`` logits. Layers lowered to custom ops cannot be quantized this way
(:func:`int8_blockers`); plain Keras layers (pruned, slimmed, factorized models) can.

Sparse weights: when at least :data:`SPARSE_THRESHOLD` (half) of the weights of the plain
Conv / DepthwiseConv / Dense kernels, all counted together, are exact zeros
(:func:`sparse_fraction`), the converter's ``EXPERIMENTAL_SPARSITY`` is on: TFLite then stores
each constant weight tensor that is itself at least 30% zeros (:data:`TFLITE_MIN_SPARSITY`,
TFLite's own per-tensor rule) in its compressed sparse format, rebuilt once by a ``DENSIFY``
op at load time in any stock runtime. With int8 the sparse file is kept only when it runs in
:func:`tfcompress.runtime.Interpreter`, gives the dense int8 file's outputs and is smaller;
XNNPACK refuses a ``DENSIFY``-fed int8 ``FULLY_CONNECTED``: the weights of just those layers are
stored dense (:mod:`tfcompress.convert.sparse_fallback`); when the file still does not run or is
no smaller, the dense int8 file is returned with a warning.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from tfcompress.convert.lowering import _all_layers, apply_flatbuffer_passes, lowered, lowered_custom_op, lowering_rule
from tfcompress.errors import ModelFileError, TfcompressError
from tfcompress.fileio import check_output_path, write_bytes_atomic


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` file with every tfcompress layer registered, in Keras' safe mode.

    Safe mode never runs code stored in the file: a ``Lambda`` layer (a pickled Python
    function) is refused, not executed.

    Raises:
        ModelFileError: the file is missing, not a ``.keras`` (zip) file, cut short, holds a
            ``Lambda`` layer, or cannot be read; the message is one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: expected a .keras file")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            cut = file.read(4) == b"PK\x03\x04"  # a zip's first entry, but no directory at the end
        size = path.stat().st_size
        raise ModelFileError(
            f"{path} is not a complete .keras file: {size:,} bytes of a zip archive whose end is missing (cut short?)"
            if cut
            else f"{path} is not a .keras file: a .keras file is a zip archive, this one ({size:,} bytes) is not"
        )
    from tfcompress.plugins import load_methods

    load_methods()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        if "safe_mode" in str(error) and "Lambda" in str(error):
            raise ModelFileError(
                f"{path} holds a Lambda layer, whose Python code would run on loading; it is refused (Keras safe "
                "mode). Rebuild the model without Lambda layers, or, only if you trust the file, load it yourself "
                "with keras.models.load_model(path, safe_mode=False)"
            ) from error
        message = " ".join(str(error).split())  # Keras' messages span lines; the CLI prints one
        raise ModelFileError(f"{path} could not be loaded as a Keras model: {message}") from error


def _export_saved_model(model: keras.Model, directory: str) -> None:
    """Export ``model``'s inference function as a SavedModel, with lowering rules in force."""
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise TfcompressError(f"model {model.name} has {len(model.inputs)} inputs; one image input is supported")
    shape = [1, *model.inputs[0].shape[1:]]
    archive = keras.export.ExportArchive()
    archive.track(model)
    with lowered(model):
        archive.add_endpoint(
            "serve",
            lambda image: model(image, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32, name="image")],
        )
        archive.write_out(directory, verbose=False)


def _representative(calibration: np.ndarray) -> Iterable[list[np.ndarray]]:
    def generate():
        for image in calibration:
            yield [image[None].astype(np.float32)]

    return generate


SPARSE_THRESHOLD = 0.5
TFLITE_MIN_SPARSITY = 0.3  # TFLite's DenseToSparse pass keeps a tensor dense below this
KERNEL_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dense,
)
SPARSE_INT8_CHECK_IMAGES = 4
SPARSE_INT8_TOLERANCE = 0.01  # of the largest |output| of the dense int8 file
MAX_NAMED_BLOCKERS = 8


def sparse_fraction(model: keras.Model) -> float:
    """Fraction of exact zeros over the kernels the converter stores as constant weights.

    Counted over the ``kernel`` of every Conv1D/2D/3D, DepthwiseConv1D/2D and Dense layer
    (subclasses included) that has no lowering rule, all kernels together (0.0 when there is
    none). :func:`to_tflite` writes sparse weights when this is at least :data:`SPARSE_THRESHOLD`.
    """
    zeros = total = 0
    for layer in _all_layers(model):
        kernel = plain_kernel(layer)
        if kernel is not None:
            zeros += int(np.count_nonzero(kernel == 0))
            total += kernel.size
    return zeros / total if total else 0.0


def plain_kernel(layer: keras.layers.Layer) -> np.ndarray | None:
    """The kernel the converter stores as a constant weight (``None`` for other layers).

    That is the ``kernel`` of a Conv1D/2D/3D, DepthwiseConv1D/2D or Dense layer (subclasses
    included) without a lowering rule.
    """
    if isinstance(layer, KERNEL_LAYERS) and lowering_rule(layer) is None:
        return keras.ops.convert_to_numpy(layer.kernel)
    return None


def int8_blockers(model: keras.Model) -> list[tuple[str, str]]:
    """``(layer name, reason)`` of every layer full-integer conversion cannot take.

    These are the layers with a lowering rule (PQ, Deep Compression shared-weight and binary
    layers): they become custom ops, which the int8 converter cannot quantize.
    """
    return [
        (layer.name, f"{type(layer).__name__} -> {lowered_custom_op(layer) or 'a custom lowering'}")
        for layer in _all_layers(model)
        if lowering_rule(layer) is not None
    ]


def check_int8(model: keras.Model) -> None:
    """Raise unless :func:`int8_blockers` is empty.

    Raises:
        TfcompressError: one line naming the layers that cannot be quantized to int8.
    """
    blockers = int8_blockers(model)
    if blockers:
        names = ", ".join(f"{name} ({reason})" for name, reason in blockers[:MAX_NAMED_BLOCKERS])
        if len(blockers) > MAX_NAMED_BLOCKERS:
            names += f" and {len(blockers) - MAX_NAMED_BLOCKERS} more"
        raise TfcompressError(
            f"int8 conversion cannot take layers lowered to custom ops: {names}; convert without --int8"
        )


def to_tflite(
    model: keras.Model,
    int8: bool = False,
    calibration: np.ndarray | None = None,
    flatbuffer_passes: bool = True,
    sparse: bool | None = None,
    int8_weights: bool = False,
) -> bytes:
    """Convert ``model`` to a ``.tflite`` flatbuffer.

    Args:
        model: a Keras 3 model with one image input. It is not modified.
        int8: full-integer quantization (needs ``calibration``).
        calibration: images (N, H, W, 3) in the model's input range, for int8 ranges.
        flatbuffer_passes: run the methods' registered flatbuffer passes on the result (see
            :func:`tfcompress.convert.lowering.register_flatbuffer_pass`); ``False`` gives the
            converter's file as it is.
        sparse: store sparse weights in TFLite's sparse format (``EXPERIMENTAL_SPARSITY``);
            ``None`` (default): when :func:`sparse_fraction` >= :data:`SPARSE_THRESHOLD`.
            With ``int8`` the sparse file is checked in the runtime and replaced by the dense
            int8 file, with a warning, when it fails (see the module docstring).
        int8_weights: dynamic-range quantization: the kernels of the plain Conv/Dense layers
            (over 1,024 weights) stored in int8 with a float scale per output channel (per tensor for
            Dense: its per-channel op version is newer than tflite-runtime 2.14 loads),
            activations float; it composes with the custom ops (the float stem, shortcuts and
            classifier of a binary net), needs no calibration and excludes ``int8``.

    Raises:
        TfcompressError: int8 with layers lowered to custom ops (:func:`int8_blockers`),
            without calibration data, or with calibration images of the wrong shape.
    """
    if int8 and int8_weights:
        raise TfcompressError("choose one of int8 (full-integer) and int8 weights (dynamic range)")
    if int8:
        check_int8(model)
        _check_calibration(model, calibration)
    if sparse is None:
        sparse = sparse_fraction(model) >= SPARSE_THRESHOLD
    with tempfile.TemporaryDirectory() as saved_model:
        _export_saved_model(model, saved_model)
        tflite_bytes = _convert_saved_model(saved_model, int8, calibration, sparse, int8_weights)
        if int8 and sparse:
            dense = _convert_saved_model(saved_model, int8, calibration)
            tflite_bytes = _checked_sparse_int8(tflite_bytes, dense, calibration[:SPARSE_INT8_CHECK_IMAGES])
    tflite_bytes = apply_flatbuffer_passes(tflite_bytes) if flatbuffer_passes else tflite_bytes
    _warn_newer_ops(tflite_bytes)
    return tflite_bytes


def _warn_newer_ops(tflite_bytes: bytes) -> None:
    """Warn when the file holds builtin op versions the oldest supported runtime cannot load."""
    from tfcompress.convert.op_versions import OLDEST_RUNTIME, newer_ops, runtime_name

    newer = newer_ops(tflite_bytes)
    if newer:
        warnings.warn(
            f"the file needs a newer runtime than {runtime_name(OLDEST_RUNTIME)} (the Pi app's fallback): "
            + ", ".join(op.describe() for op in newer)
            + "; it loads in ai-edge-litert >= 2.3",
            stacklevel=3,
        )


def _check_calibration(model: keras.Model, calibration: np.ndarray | None) -> None:
    if calibration is None or len(calibration) == 0:
        raise TfcompressError("int8 conversion needs calibration images (--calibration-data DIR)")
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(calibration.shape[1:]) != expected:
        raise TfcompressError(
            f"calibration images have shape {tuple(calibration.shape[1:])}, the model expects {expected}"
        )


def _convert_saved_model(
    saved_model: str, int8: bool, calibration: np.ndarray | None, sparse: bool = False, int8_weights: bool = False
) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.allow_custom_ops = True
    converter.optimizations = [tf.lite.Optimize.DEFAULT] if int8 or int8_weights else []
    if int8_weights:  # per-channel dynamic-range FULLY_CONNECTED is v12: tflite-runtime 2.14 has up to v10
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if sparse:
        converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if int8:
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter.convert()


def _checked_sparse_int8(sparse: bytes, dense: bytes, images: np.ndarray) -> bytes:
    """``sparse`` when it is smaller than ``dense`` and gives its outputs on ``images`` in the runtime.

    Weights the XNNPACK delegate refuses sparse (int8 ``FULLY_CONNECTED``) are stored dense first
    (:func:`tfcompress.convert.sparse_fallback.delegable_sparse`). Otherwise ``dense``, with a
    warning that says why.
    """
    from tfcompress.convert.sparse_fallback import delegable_sparse
    from tfcompress.evaluate import TFLiteClassifier

    if len(sparse) >= len(dense):
        return dense
    expected = TFLiteClassifier(model_content=dense).predict(images)
    try:
        sparse, _ = delegable_sparse(sparse, lambda content: TFLiteClassifier(model_content=content))
        outputs = TFLiteClassifier(model_content=sparse).predict(images)
    except (RuntimeError, ValueError, TfcompressError) as error:
        problem = f"it does not run in the runtime ({' '.join(str(error).split())})"
    else:
        difference = float(np.max(np.abs(outputs - expected)))
        if difference <= SPARSE_INT8_TOLERANCE * float(np.max(np.abs(expected))) and len(sparse) < len(dense):
            return sparse
        problem = f"its outputs differ from the dense int8 file's by up to {difference:.3g}"
        if len(sparse) >= len(dense):
            problem = "with the weights XNNPACK refuses sparse stored dense it is no smaller"
    warnings.warn(
        f"sparse int8 file not used: {problem}; using the dense int8 file ({len(dense):,} bytes "
        f"instead of {len(sparse):,}); convert without --int8 for a sparse float file",
        stacklevel=3,
    )
    return dense


def convert(
    model: keras.Model | str | os.PathLike,
    output: str | os.PathLike,
    int8: bool = False,
    calibration_data: str | os.PathLike | None = None,
    calibration_images: int = 200,
    force: bool = False,
    sparse: bool | None = None,
    int8_weights: bool = False,
) -> Path:
    """Convert a Keras model (object or ``.keras`` path) and write the ``.tflite`` atomically.

    Args:
        model: the model or its ``.keras`` file.
        output: the ``.tflite`` to write; refused if it exists unless ``force``.
        int8: full-integer post-training quantization.
        calibration_data: data folder for int8 calibration (its ``train`` split; see
            :func:`tfcompress.data.resolve_data_dir` for the default).
        calibration_images: how many training images calibrate the int8 ranges.
        force: overwrite ``output``.
        sparse: sparse weights (see :func:`to_tflite`; ``None``: by :func:`sparse_fraction`).
        int8_weights: int8 kernels, float activations (dynamic range; see :func:`to_tflite`).
    """
    check_output_path(output, force)
    if int8 and int8_weights:
        raise TfcompressError("choose one of int8 (full-integer) and int8 weights (dynamic range)")
    if not isinstance(model, keras.Model):
        model = load_keras_model(model)
    calibration = None
    if int8:
        from tfcompress.data import load_split

        check_int8(model)

        size = model.inputs[0].shape[1]
        calibration = load_split(calibration_data, "train", size, limit=calibration_images).images
    tflite_bytes = to_tflite(model, int8=int8, calibration=calibration, sparse=sparse, int8_weights=int8_weights)
    return write_bytes_atomic(output, tflite_bytes, force)
