"""Two-stage distillation of a binary network from a real-valued teacher (Real-to-Binary).

Martinez, Yang, Bulat & Tzimiropoulos 2020, "Training Binary Neural Networks with
Real-to-Binary Convolutions": a binary student learns best in two stages, each distilled
from the real-valued teacher,

1. binary activations, **real** weights (every ``BinaryConv2D`` keeps ``sign(x)`` on its
   input but drops its kernel quantizer and clip), trained from scratch;
2. binary activations **and** binary weights, started from stage 1's weights, weight decay 0;

with the loss of each stage

    L = alpha * CE(y, z_s) + (1 - alpha) * [T^2 KL(softmax(z_t/T) || softmax(z_s/T))
        + beta * sum_j || Q_s^j / ||Q_s^j|| - Q_t^j / ||Q_t^j|| ||_2]

where ``Q^j = sum_c |A_c^j|^2`` is the spatial attention map of the j-th paired layer
(Zagoruyko & Komodakis 2017, the attention matching of the paper;
:class:`tfcompress.distill.AttentionTransfer`). Each stage is :func:`tfcompress.distill.distill`
with its recipe (optimizer, schedule, augmentation, best-validation weights, resumable).

>>> from tfcompress.binary.real_to_binary import real_to_binary  # doctest: +SKIP
>>> real_to_binary("binary.keras", "models/flowers_float.keras", "flowers5", config)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import keras

from tfcompress.binary.layers import BinaryConv2D, BinaryDense
from tfcompress.distill import DistillConfig, distill, load_teacher
from tfcompress.distill.fit import zoo_width
from tfcompress.distill.pairs import LayerPairs
from tfcompress.distribute import DeviceRequest
from tfcompress.errors import TfcompressError
from tfcompress.fileio import check_output_path
from tfcompress.models import build_model

BINARY_LAYERS = ("BinaryConv2D", "BinaryDense")
STAGE1_FILE = "stage1_real_weights.keras"


def _with_kernel_quantizers(model: keras.Model, keep: bool, weights_from: keras.Model | None = None) -> keras.Model:
    """A copy of ``model`` whose binary layers keep (or drop) their kernel quantizer and clip, holding the
    weights of ``weights_from`` (default: ``model``'s; the two share one list of variables)."""
    config = model.get_config()
    binary = 0
    for layer in config["layers"]:
        if layer["class_name"] in BINARY_LAYERS:
            binary += 1
            if not keep:
                layer["config"]["kernel_quantizer"] = None
                layer["config"]["kernel_constraint"] = None
    if not binary:
        raise TfcompressError(f"model {model.name!r} has no BinaryConv2D or BinaryDense layer to train in two stages")
    custom = {"BinaryConv2D": BinaryConv2D, "BinaryDense": BinaryDense}
    copy = keras.Model.from_config(config, custom_objects=custom)
    copy.set_weights((weights_from or model).get_weights())
    return copy


def real_weights_student(student: keras.Model) -> keras.Model:
    """Stage 1's student: ``student`` with real kernels (binary activations only), same variables."""
    return _with_kernel_quantizers(student, keep=False)


def binary_student(template: keras.Model, weights_from: keras.Model) -> keras.Model:
    """Stage 2's student: ``template``'s binary layers with ``weights_from``'s (stage 1's) weights."""
    return _with_kernel_quantizers(template, keep=True, weights_from=weights_from)


def _last_layer_per_size(model: keras.Model, start: int = 0) -> dict[int, str]:
    """For each spatial size of the 4-D outputs of ``model.layers[start:]``, the last layer with that size."""
    sizes: dict[int, str] = {}
    for layer in model.layers[start:]:
        shape = layer.output.shape if hasattr(layer, "output") else None
        if shape is not None and len(shape) == 4 and shape[1] is not None:
            sizes[int(shape[1])] = layer.name
    return sizes


def spatial_attention_pairs(teacher: keras.Model, student: keras.Model) -> list[tuple[str, str]]:
    """Attention-matching pairs at every resolution the teacher and the student's binary body share.

    For each spatial size reached by the student after its first binary layer, the last layer
    of that size in the student is paired with the last layer of that size in the teacher (the
    ends of their stages, as Real-to-Binary matches block outputs).
    """
    first_binary = next(
        (i for i, layer in enumerate(student.layers) if type(layer).__name__ in BINARY_LAYERS), len(student.layers)
    )
    ours, theirs = _last_layer_per_size(student, first_binary), _last_layer_per_size(teacher)
    return [(theirs[size], ours[size]) for size in sorted(ours, reverse=True) if size in theirs]


def real_to_binary(
    output: str | os.PathLike,
    teacher: keras.Model | str | os.PathLike,
    data_dir: str | os.PathLike | None,
    config: DistillConfig,
    student: keras.Model | None = None,
    attention_pairs: LayerPairs | str | None = "auto",
    devices: DeviceRequest = None,
    backup_dir: str | os.PathLike | None = None,
    force: bool = False,
    limit: int | None = None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Distill a binary ``student`` (or the zoo's ``config.model``) from ``teacher`` in two stages; save it.

    Each stage trains ``config.epochs`` epochs with ``config``'s recipe; stage 2 has no weight
    decay (its latent weights are clipped instead). With ``backup_dir`` the run is resumable:
    stage 1's model is kept there as ``stage1_real_weights.keras`` and each stage's
    ``BackupAndRestore`` state in ``stage1/`` and ``stage2/``; rerun the same command.

    Args:
        output: the binary student ``.keras`` (refused if it exists, unless ``force``).
        teacher, data_dir, devices, limit, verbose: as in :func:`tfcompress.distill.distill`.
        attention_pairs: ``[(teacher layer, student layer), ...]`` to match attention maps;
            ``"auto"``: :func:`spatial_attention_pairs`; None: soft targets only.
        config: the student (``model``, ``width``, ``image_size``) and the recipe of both stages.
        student: a binary model to train instead of the zoo's (its weights are the start of stage 1).
        backup_dir: resumable state of both stages (a temporary folder when None).

    Returns:
        The trained binary student.

    Raises:
        TfcompressError: the output exists, the student has no binary layer, or what
            :func:`tfcompress.distill.distill` raises.
    """
    check_output_path(output, force)
    teacher_model = load_teacher(teacher)
    if student is None:
        classes = int(teacher_model.outputs[0].shape[-1])
        student = build_model(
            config.model, num_classes=classes, image_size=config.image_size, width=zoo_width(config.model, config.width)
        )
    if attention_pairs == "auto":
        attention_pairs = spatial_attention_pairs(teacher_model, student) or None
    stage1_student = real_weights_student(student)
    with tempfile.TemporaryDirectory(prefix="tfcompress-r2b-") as scratch:
        work = Path(backup_dir) if backup_dir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        stage1_file = work / STAGE1_FILE
        common = {"attention_pairs": attention_pairs, "devices": devices, "limit": limit, "verbose": verbose}
        if stage1_file.exists():
            from tfcompress.convert import load_keras_model

            print(f"stage 1 (binary activations, real weights): done, {stage1_file}")
            stage1 = load_keras_model(stage1_file)
        else:
            print(f"stage 1 of 2: binary activations, real weights, {config.epochs} epochs")
            stage1 = distill(
                stage1_file, teacher_model, data_dir, config, student=stage1_student,
                backup_dir=work / "stage1", force=True, **common,
            )  # fmt: skip
        print(f"stage 2 of 2: binary activations and weights, {config.epochs} epochs, from stage 1")
        stage2_config = dataclasses.replace(config, weight_decay=0.0)
        return distill(
            output, teacher_model, data_dir, stage2_config, student=binary_student(student, stage1),
            backup_dir=work / "stage2", force=force, **common,
        )  # fmt: skip
