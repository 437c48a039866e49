"""Naming the layers that feature terms connect, and checking them before any training.

A layer pair is ``(teacher_layer_name, student_layer_name)``; a single name stands for the
same name in both models. Lookups fail with a one-line :class:`TfcompressError` that names
the missing layer (and a few close names) or the two shapes that do not fit.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

import keras

from tfcompress.errors import TfcompressError

LayerPairs = Iterable[str | tuple[str, str]] | Mapping[str, str]


def normalize_pairs(pairs: LayerPairs | None) -> list[tuple[str, str]]:
    """``["a", ("b", "c")]`` or ``{"b": "c"}`` -> ``[("a", "a"), ("b", "c")]`` (teacher, student)."""
    if pairs is None:
        return []
    if isinstance(pairs, Mapping):
        return [(str(t), str(s)) for t, s in pairs.items()]
    result = []
    for pair in pairs:
        if isinstance(pair, str):
            result.append((pair, pair))
        elif isinstance(pair, tuple | list) and len(pair) == 2:
            result.append((str(pair[0]), str(pair[1])))
        else:
            raise TfcompressError(f"a layer pair must be a name or (teacher_name, student_name), got {pair!r}")
    return result


def find_layer(model: keras.Model, name: str, role: str) -> keras.layers.Layer:
    """``model.get_layer(name)`` with a clear error for ``role`` ("teacher" or "student").

    Raises:
        TfcompressError: no layer of that name; the message suggests close names.
    """
    names = [layer.name for layer in model.layers]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise TfcompressError(f"{role} model {model.name!r} has no layer named {name!r}{hint}")
    return model.get_layer(name)


def output_shape(layer: keras.layers.Layer, role: str) -> tuple:
    """The symbolic output shape of a layer of a functional model (batch dimension dropped)."""
    try:
        return tuple(layer.output.shape[1:])
    except (AttributeError, ValueError) as error:
        raise TfcompressError(
            f"{role} layer {layer.name!r} has no single symbolic output (feature terms need a functional model)"
        ) from error


def check_pairs(
    teacher: keras.Model, student: keras.Model, pairs: LayerPairs | None, match: str = "shape"
) -> list[tuple[str, str]]:
    """Resolve ``pairs`` and check that each teacher/student output fits the term.

    Args:
        match: ``"shape"`` (equal output shapes: feature matching) or ``"spatial"`` (equal
            height and width of 4-D feature maps: attention transfer).

    Raises:
        TfcompressError: a name is missing in its model, or the shapes do not fit.
    """
    resolved = normalize_pairs(pairs)
    for teacher_name, student_name in resolved:
        teacher_shape = output_shape(find_layer(teacher, teacher_name, "teacher"), "teacher")
        student_shape = output_shape(find_layer(student, student_name, "student"), "student")
        if match == "shape" and teacher_shape != student_shape:
            raise TfcompressError(
                f"feature term {teacher_name!r} -> {student_name!r}: teacher output {teacher_shape} and student "
                f"output {student_shape} differ; feature matching needs equal shapes (use attention transfer for "
                "different channel counts)"
            )
        if match == "spatial":
            if len(teacher_shape) != 3 or len(student_shape) != 3:
                raise TfcompressError(
                    f"attention term {teacher_name!r} -> {student_name!r}: needs 4-D feature maps, got teacher "
                    f"{teacher_shape} and student {student_shape}"
                )
            if teacher_shape[:2] != student_shape[:2]:
                raise TfcompressError(
                    f"attention term {teacher_name!r} -> {student_name!r}: spatial sizes differ, teacher "
                    f"{teacher_shape[:2]} vs student {student_shape[:2]}"
                )
    return resolved


def matching_layer_pairs(teacher: keras.Model, student: keras.Model) -> list[tuple[str, str]]:
    """Default pairs of the layer-wise mode: layers with weights that both models name alike.

    A layer is paired when the teacher has a layer of the same name that owns weights, both
    outputs have the same shape, and it is not a model output (the soft-target term already
    covers the logits). A compressed student that keeps its teacher's layer names (a pruned,
    product-quantized or factorised copy) is thus matched layer by layer; layers whose
    shape changed (removed channels) are skipped.
    """
    outputs = {id(t) for t in student.outputs} | {id(t) for t in teacher.outputs}
    teacher_layers = {layer.name: layer for layer in teacher.layers}
    pairs = []
    for layer in student.layers:
        twin = teacher_layers.get(layer.name)
        if twin is None or not twin.weights or not layer.weights:
            continue
        try:
            same = tuple(twin.output.shape) == tuple(layer.output.shape)
            is_output = id(twin.output) in outputs or id(layer.output) in outputs
        except (AttributeError, ValueError):
            continue
        if same and not is_output:
            pairs.append((layer.name, layer.name))
    return pairs
