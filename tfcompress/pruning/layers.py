"""Keras layers that carry a Deep Compression kernel: shared, sparse weights plus their bit widths.

:class:`SharedConv2D` and :class:`SharedDense` compute exactly what ``Conv2D`` / ``Dense`` do;
their kernel holds at most ``2**weight_bits - 1`` distinct nonzero values (see
:func:`tfcompress.pruning.deep_compression.share_weights`). They exist so that the converter
can find them (:mod:`tfcompress.pruning.lowering`) and store the kernel Huffman-coded.
:func:`deep_compress` turns a pruned functional model into one made of them.
"""

from __future__ import annotations

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.nested import inline_submodels
from tfcompress.pruning.deep_compression import CONV_BITS, DENSE_BITS, GAP_BITS_AUTO, check_gap_bits, shared_kernel
from tfcompress.skipped import SkippedLayer, attach_skipped, describe_skipped, has_kernel


def _check_bits(weight_bits: int, gap_bits: int | None) -> None:
    if not 1 <= int(weight_bits) <= 8:
        raise TfcompressError(f"weight_bits must be in [1, 8], got {weight_bits}")
    check_gap_bits(gap_bits)


def _maybe_tied(layer: keras.layers.Layer, kernel):
    """``kernel``, with cluster-tied gradients while ``layer.cluster_ids`` is set (trained quantization)."""
    if getattr(layer, "cluster_ids", None) is None:
        return kernel
    from tfcompress.pruning.trained_quantization import tied_kernel

    return tied_kernel(kernel, layer.cluster_ids, 2**layer.weight_bits)


@keras.saving.register_keras_serializable(package="tfcompress")
class SharedConv2D(keras.layers.Conv2D):
    """``Conv2D`` whose kernel is stored Deep-Compression coded in the ``.tflite``.

    Args:
        weight_bits: bits of the shared-weight index (``2**bits - 1`` shared values).
        gap_bits: bits of a relative sparse position before Huffman coding; 0 is dense mode (no
            position stream, zeros coded as index 0), None (default) the smallest choice per kernel.
        **kwargs: the arguments of ``keras.layers.Conv2D``.

    Example:
        >>> layer = SharedConv2D(8, 3, weight_bits=5)
    """

    def __init__(self, *args, weight_bits: int = CONV_BITS, gap_bits: int | None = GAP_BITS_AUTO, **kwargs):
        _check_bits(weight_bits, gap_bits)
        super().__init__(*args, **kwargs)
        self.weight_bits = int(weight_bits)
        self.gap_bits = None if gap_bits is None else int(gap_bits)
        self.cluster_ids: np.ndarray | None = None  # set while finetuning centroids

    @property
    def kernel(self):
        return _maybe_tied(self, super().kernel)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight_bits": self.weight_bits, "gap_bits": self.gap_bits}


@keras.saving.register_keras_serializable(package="tfcompress")
class SharedDense(keras.layers.Dense):
    """``Dense`` whose kernel is stored Deep-Compression coded in the ``.tflite`` (see :class:`SharedConv2D`)."""

    def __init__(self, *args, weight_bits: int = DENSE_BITS, gap_bits: int | None = GAP_BITS_AUTO, **kwargs):
        _check_bits(weight_bits, gap_bits)
        super().__init__(*args, **kwargs)
        self.weight_bits = int(weight_bits)
        self.gap_bits = None if gap_bits is None else int(gap_bits)
        self.cluster_ids: np.ndarray | None = None  # set while finetuning centroids

    @property
    def kernel(self):
        return _maybe_tied(self, super().kernel)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight_bits": self.weight_bits, "gap_bits": self.gap_bits}


def deep_compress(
    model: keras.Model,
    conv_bits: int = CONV_BITS,
    dense_bits: int = DENSE_BITS,
    gap_bits: int | None = GAP_BITS_AUTO,
    exclude: tuple[str, ...] = (),
) -> keras.Model:
    """A NEW functional model whose Conv2D / Dense kernels are weight-shared (k-means per layer).

    Run it on a pruned, stripped model; zeros stay zeros. Layers in ``exclude`` (and any
    layer that is not a plain ``Conv2D`` / ``Dense`` with ``groups=1``) are copied as they are;
    :func:`tfcompress.skipped.skipped_layers` on the result lists those with a kernel.

    Raises:
        UnsupportedLayerError: not a Functional/Sequential model, or nothing to compress.
        TfcompressError: bit widths outside [1, 8] (gap bits: None or [0, 8]).
    """
    _check_bits(conv_bits, gap_bits)
    _check_bits(dense_bits, gap_bits)
    if not hasattr(model, "inputs") or not model.inputs:
        raise UnsupportedLayerError(f"model {model.name!r}: deep_compress needs a Functional or Sequential model")
    model = inline_submodels(model)  # a nested backbone's kernels, shared like the others
    chosen: dict[str, int] = {}

    def replace(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name in exclude:
            return layer.__class__.from_config(config)
        if type(layer) is keras.layers.Conv2D and layer.groups == 1:
            chosen[layer.name] = conv_bits
            return SharedConv2D.from_config({**config, "weight_bits": conv_bits, "gap_bits": gap_bits})
        if type(layer) is keras.layers.Dense and len(layer.kernel.shape) == 2:
            chosen[layer.name] = dense_bits
            return SharedDense.from_config({**config, "weight_bits": dense_bits, "gap_bits": gap_bits})
        return layer.__class__.from_config(config)

    compressed = keras.models.clone_model(model, clone_function=replace)
    left = [
        SkippedLayer.of(layer, "excluded" if layer.name in exclude else "only Conv2D (groups=1) and Dense are shared")
        for layer in model.layers
        if has_kernel(layer) and layer.name not in chosen
    ]
    if not chosen:
        raise UnsupportedLayerError(
            f"model {model.name!r} has no Conv2D or Dense layer to compress" + describe_skipped(left, "; left: ")
        )
    progress = keras.utils.Progbar(len(model.layers), unit_name="layer")
    for layer in model.layers:
        weights = layer.get_weights()
        if layer.name in chosen:
            weights = [shared_kernel(weights[0], chosen[layer.name]), *weights[1:]]
        if weights:
            compressed.get_layer(layer.name).set_weights(weights)
        progress.add(1)
    return attach_skipped(compressed, left)


def shared_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The :class:`SharedConv2D` / :class:`SharedDense` layers of ``model``."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, SharedConv2D | SharedDense)
    ]


def codebook_and_indices(kernel: np.ndarray, weight_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Recover ``(codebook [2**bits], indices)`` from a shared kernel (its distinct nonzero values).

    Raises:
        TfcompressError: the kernel has more distinct nonzero values than ``2**bits - 1``.
    """
    kernel = np.asarray(kernel, np.float32)
    values = np.unique(kernel[kernel != 0])
    if len(values) > 2**weight_bits - 1:
        raise TfcompressError(
            f"kernel has {len(values)} distinct nonzero values, more than 2**{weight_bits} - 1: "
            "run tfcompress.pruning.deep_compress (weight sharing) first"
        )
    codebook = np.zeros(2**weight_bits, np.float32)
    codebook[1 : len(values) + 1] = values
    indices = np.zeros(kernel.shape, np.int64)
    nonzero = kernel != 0
    indices[nonzero] = np.searchsorted(values, kernel[nonzero]) + 1
    return codebook, indices
