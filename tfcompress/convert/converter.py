"""Keras 3 -> ``.tflite``: float and full-integer post-training quantization.

The model is traced in inference mode with the lowering rules of
:mod:`tfcompress.convert.lowering` in force, and handed to the TFLite converter as a
concrete function. Custom ops are allowed so that lowered layers become ``CUSTOM`` ops.

Full-integer quantization (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference"): weights are int8 per channel,
activations int8 per tensor with ranges calibrated on a representative data set; the
input is ``uint8`` (raw pixels, since the zoo models rescale inside the graph) and the
output stays ``float32`` logits.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from tfcompress.convert.lowering import apply_flatbuffer_passes, lowered
from tfcompress.errors import ModelFileError, TfcompressError
from tfcompress.fileio import check_output_path, write_bytes_atomic


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` file with every tfcompress layer registered.

    Raises:
        ModelFileError: the file is missing, not a ``.keras`` file, or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: expected a .keras file")
    from tfcompress.plugins import load_methods

    load_methods()
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        raise ModelFileError(f"{path} could not be loaded as a Keras model: {error}") from error


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


def to_tflite(
    model: keras.Model,
    int8: bool = False,
    calibration: np.ndarray | None = None,
    flatbuffer_passes: bool = True,
) -> bytes:
    """Convert ``model`` to a ``.tflite`` flatbuffer.

    Args:
        model: a Keras 3 model with one image input. It is not modified.
        int8: full-integer quantization (needs ``calibration``).
        calibration: images (N, H, W, 3) in the model's input range, for int8 ranges.
        flatbuffer_passes: run the methods' registered flatbuffer passes on the result (see
            :func:`tfcompress.convert.lowering.register_flatbuffer_pass`); ``False`` gives the
            converter's file as it is.

    Raises:
        TfcompressError: int8 without calibration data, or calibration images of the
            wrong shape.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved_model:
        _export_saved_model(model, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        tflite_bytes = _configure(converter, model, int8, calibration).convert()
    return apply_flatbuffer_passes(tflite_bytes) if flatbuffer_passes else tflite_bytes


def _configure(converter, model: keras.Model, int8: bool, calibration: np.ndarray | None):
    import tensorflow as tf

    converter.allow_custom_ops = True
    if int8:
        if calibration is None or len(calibration) == 0:
            raise TfcompressError("int8 conversion needs calibration images (--calibration-data DIR)")
        expected = tuple(model.inputs[0].shape[1:])
        if tuple(calibration.shape[1:]) != expected:
            raise TfcompressError(
                f"calibration images have shape {tuple(calibration.shape[1:])}, the model expects {expected}"
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter


def convert(
    model: keras.Model | str | os.PathLike,
    output: str | os.PathLike,
    int8: bool = False,
    calibration_data: str | os.PathLike | None = None,
    calibration_images: int = 200,
    force: bool = False,
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
    """
    check_output_path(output, force)
    if not isinstance(model, keras.Model):
        model = load_keras_model(model)
    calibration = None
    if int8:
        from tfcompress.data import load_split

        size = model.inputs[0].shape[1]
        calibration = load_split(calibration_data, "train", size, limit=calibration_images).images
    return write_bytes_atomic(output, to_tflite(model, int8=int8, calibration=calibration), force)
