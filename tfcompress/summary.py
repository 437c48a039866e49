"""Per-layer bits, parameter memory and MACs of a compressed model, counted as the ``.tflite`` stores it.

For every layer (nested models are walked into):

- bits of the inputs: 1 when the layer has an input quantizer (binary layers), else 32;
- kernel bits per weight, as stored:

  - binary kernel (``BinaryConv2D`` / ``BinaryDense`` with a kernel quantizer): 1;
  - product-quantized (``PQConv2D`` / ``PQDense``): ``ceil(log2 k) / d`` for the codes plus
    the fp16 codebook's share (:func:`tfcompress.pq.size.pq_layer_size`);
  - Deep Compression (``SharedConv2D`` / ``SharedDense``): the Huffman-coded index and
    position streams plus the codebook, as the file holds them
    (:func:`tfcompress.pruning.lowering.encoded_layer`);
  - a plain Conv / DepthwiseConv / Dense kernel that ``convert`` stores sparse (the model's
    :func:`tfcompress.convert.sparse_fraction` is at least ``SPARSE_THRESHOLD`` and the kernel
    itself at least :data:`TFLITE_MIN_SPARSITY` zeros): TFLite's sparse format, 32 bits per
    nonzero plus its index, and one segment pointer per row of the innermost dimension
    (each array in the smallest of uint8, uint16, int32 that holds its values);
  - any other kernel: 32;

- parameters: the weights of the same model in float32 (a PQ kernel counts its decoded
  weights); parameter memory: the kernel as above, every other weight (biases, BatchNorm
  parameters and statistics) at 32 bits. The per-channel scale of ``magnitude_aware_sign`` is
  not a stored weight: it folds into the following BatchNorm / the op's output transform;
- MACs (multiply-accumulates of one image): for a conv
  ``H_out * W_out * C_out * k_h * k_w * C_in / groups``; for a depthwise conv
  ``H_out * W_out * C_in * multiplier * k_h * k_w``; for a dense layer
  ``(positions) * C_in * units``; 0 for the other layers;
- binary MACs: the MACs of layers with *both* inputs and kernel binary, i.e. the ones an
  XNOR + popcount kernel computes (Rastegari et al. 2016, "XNOR-Net").

The model's size is compared with the same model stored all in float32 (32 bits per weight).

>>> result = summary(model)          # prints the table  # doctest: +SKIP
>>> result.compression_ratio         # float32 bytes / stored bytes  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import keras
import numpy as np

from tfcompress.errors import UnsupportedLayerError

FLOAT_BITS = 32


@dataclass
class LayerSummary:
    """One layer's row of the summary."""

    name: str
    kind: str
    input_bits: int | None
    kernel_bits: float | None  # per kernel weight, as stored
    params: int
    binary_params: int
    memory_bytes: float
    macs: int
    binary_macs: int

    @property
    def binarized_fraction(self) -> float:
        """Share of this layer's MACs that are binary (0 for a layer without MACs)."""
        return self.binary_macs / self.macs if self.macs else 0.0


@dataclass
class ModelSummary:
    """The whole model: its layers and the totals."""

    name: str
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def memory_bytes(self) -> float:
        """Parameter memory with every kernel as stored (see the module docstring), the rest at 32 bits."""
        return sum(layer.memory_bytes for layer in self.layers)

    @property
    def float_memory_bytes(self) -> float:
        """Parameter memory of the same model all in float32."""
        return self.params * FLOAT_BITS / 8

    @property
    def compression_ratio(self) -> float:
        """``float_memory_bytes / memory_bytes``."""
        return self.float_memory_bytes / self.memory_bytes if self.memory_bytes else 1.0

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def binary_macs(self) -> int:
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def binarized_fraction(self) -> float:
        """Share of all MACs that are binary."""
        return self.binary_macs / self.macs if self.macs else 0.0

    def as_dict(self) -> dict:
        """A JSON-ready dict: the layers and the totals."""
        return {
            "name": self.name,
            "layers": [{**asdict(layer), "binarized_fraction": layer.binarized_fraction} for layer in self.layers],
            "params": self.params,
            "binary_params": self.binary_params,
            "memory_bytes": self.memory_bytes,
            "float_memory_bytes": self.float_memory_bytes,
            "compression_ratio": self.compression_ratio,
            "macs": self.macs,
            "binary_macs": self.binary_macs,
            "binarized_fraction": self.binarized_fraction,
        }

    def table(self) -> str:
        """The summary as a plain-text table with a totals row and a size line."""
        header = ("Layer", "Type", "In bits", "Kernel bits", "Params", "Memory (KiB)", "MACs", "Binary MACs")
        rows = [
            (
                layer.name,
                layer.kind,
                _bits(layer.input_bits),
                _bits(layer.kernel_bits),
                f"{layer.params:,}",
                f"{layer.memory_bytes / 1024:,.2f}",
                f"{layer.macs:,}",
                f"{100 * layer.binarized_fraction:.0f}%" if layer.macs else "-",
            )
            for layer in self.layers
        ]
        total = (
            "Total",
            "",
            "",
            "",
            f"{self.params:,}",
            f"{self.memory_bytes / 1024:,.2f}",
            f"{self.macs:,}",
            f"{100 * self.binarized_fraction:.1f}%",
        )
        widths = [max(len(row[i]) for row in [header, *rows, total]) for i in range(len(header))]

        def line(row) -> str:
            return "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )

        rule = "-" * len(line(header))
        return "\n".join(
            [
                f"Model: {self.name}",
                line(header),
                rule,
                *(line(row) for row in rows),
                rule,
                line(total),
                f"Parameter memory: {self.memory_bytes / 1024:,.2f} KiB as the file stores it, "
                f"{self.float_memory_bytes / 1024:,.2f} KiB all float32 ({self.compression_ratio:.1f}x smaller); "
                f"{self.binary_params:,} of {self.params:,} parameters binary; "
                f"{100 * self.binarized_fraction:.1f}% of {self.macs:,} MACs binary.",
            ]
        )


def _bits(bits: float | None) -> str:
    if bits is None:
        return "-"
    return str(int(bits)) if float(bits).is_integer() else f"{bits:.2f}"


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            leaves.append(layer)
    return leaves


def _shape(tensor_or_shape) -> tuple:
    return tuple(getattr(tensor_or_shape, "shape", tensor_or_shape))


def _macs(layer: keras.layers.Layer) -> int:
    """Multiply-accumulates of one sample through ``layer`` (see the module docstring)."""
    is_conv = isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D)
    is_depthwise = isinstance(layer, keras.layers.DepthwiseConv2D | keras.layers.DepthwiseConv1D)
    is_dense = isinstance(layer, keras.layers.Dense)
    if not (is_conv or is_depthwise or is_dense):
        return 0
    try:
        output_shape = _shape(layer.output)
        input_shape = _shape(layer.input)
    except (AttributeError, ValueError) as error:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} has no single known input/output; summary needs a built functional model"
        ) from error
    kernel = tuple(layer.kernel.shape)
    if is_dense:
        positions = math.prod(input_shape[1:-1])
        return positions * kernel[0] * kernel[1]
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    spatial = output_shape[1:-1] if channels_last else output_shape[2:]
    # conv kernel (*k, C_in / groups, C_out); depthwise kernel (*k, C_in, multiplier)
    return math.prod(spatial) * math.prod(kernel)


def _index_bits(largest: int) -> int:
    """Bits of the smallest of uint8, uint16 and int32 that holds ``largest``."""
    return 8 if largest < 2**8 else 16 if largest < 2**16 else 32


def sparse_kernel_bits(kernel: np.ndarray, depthwise: bool = False) -> int:
    """Bits of ``kernel`` (Keras layout) in TFLite's sparse format, as ``convert`` writes it.

    The file layout is ``[C_out, ..., C_in]`` (depthwise: ``[1, ..., C_in * multiplier]``); every
    dimension but the innermost is dense, the innermost is CSR: one segment pointer per row
    (plus one) and one index per nonzero, next to the nonzero float32 values.
    """
    inner = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-2]
    rows = kernel.size // inner
    nonzeros = int(np.count_nonzero(kernel))
    return nonzeros * (FLOAT_BITS + _index_bits(inner - 1)) + (rows + 1) * _index_bits(nonzeros)


@dataclass
class _Storage:
    """How a layer's kernel is stored: the float weights it stands for and their bits in the file."""

    replaced: int  # entries of ``layer.weights`` the kernel stands in for
    weights: int  # kernel weights of the same model in float32
    bits: float


def _kernel_storage(layer: keras.layers.Layer, sparse_file: bool) -> _Storage | None:
    """How ``layer``'s kernel is stored (see the module docstring); ``None`` for a layer without one."""
    from tfcompress.convert.converter import TFLITE_MIN_SPARSITY, plain_kernel
    from tfcompress.pq import PQConv2D, PQDense
    from tfcompress.pruning import SharedConv2D, SharedDense

    if isinstance(layer, PQConv2D | PQDense):
        from tfcompress.pq.size import pq_layer_size

        size = pq_layer_size(layer)
        bias = 0 if layer.bias is None else math.prod(layer.bias.shape)
        entries = math.prod(layer.codebook.shape) + math.prod(layer.codes.shape)
        return _Storage(entries, size.weights - bias, 8 * size.compressed_bytes - FLOAT_BITS * bias)
    if not hasattr(layer, "kernel"):
        return None
    weights = math.prod(layer.kernel.shape)
    if isinstance(layer, SharedConv2D | SharedDense):
        from tfcompress.pruning.lowering import encoded_layer

        return _Storage(weights, weights, 8 * encoded_layer(layer).nbytes)
    if getattr(layer, "kernel_quantizer", None) is not None:
        return _Storage(weights, weights, weights)
    kernel = plain_kernel(layer)
    if sparse_file and kernel is not None and np.mean(kernel == 0) >= TFLITE_MIN_SPARSITY:
        depthwise = isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D)
        return _Storage(weights, weights, sparse_kernel_bits(kernel, depthwise))
    return _Storage(weights, weights, weights * FLOAT_BITS)


def summarize_layer(layer: keras.layers.Layer, sparse_file: bool = False) -> LayerSummary:
    """The :class:`LayerSummary` of one (non-container) layer.

    ``sparse_file``: ``convert`` stores the model's sparse plain kernels in TFLite's sparse
    format (see :func:`tfcompress.convert.sparse_fraction`).
    """
    input_quantizer = getattr(layer, "input_quantizer", None)
    kernel_quantizer = getattr(layer, "kernel_quantizer", None)
    storage = _kernel_storage(layer, sparse_file)
    entries = sum(math.prod(weight.shape) for weight in layer.weights)
    params = entries if storage is None else entries - storage.replaced + storage.weights
    kernel_bits = 0.0 if storage is None else storage.bits
    other_params = params if storage is None else params - storage.weights
    binary_params = storage.weights if storage is not None and kernel_quantizer is not None else 0
    macs = _macs(layer)
    is_binary = input_quantizer is not None and kernel_quantizer is not None
    return LayerSummary(
        name=layer.name,
        kind=type(layer).__name__,
        input_bits=(1 if input_quantizer is not None else FLOAT_BITS) if macs else None,
        kernel_bits=None if storage is None else storage.bits / storage.weights,
        params=params,
        binary_params=binary_params,
        memory_bytes=(kernel_bits + other_params * FLOAT_BITS) / 8,
        macs=macs,
        binary_macs=macs if is_binary else 0,
    )


def summarize(model: keras.Model) -> ModelSummary:
    """The :class:`ModelSummary` of ``model`` without printing it."""
    from tfcompress.convert import SPARSE_THRESHOLD, sparse_fraction

    if not model.built:
        raise UnsupportedLayerError(f"model {model.name!r} is not built; call it on an input or give it an Input")
    sparse_file = sparse_fraction(model) >= SPARSE_THRESHOLD
    return ModelSummary(model.name, [summarize_layer(layer, sparse_file) for layer in _leaf_layers(model)])


def summary(model: keras.Model, print_fn=print) -> ModelSummary:
    """Print the per-layer table of ``model`` (with ``print_fn``) and return the :class:`ModelSummary`.

    Raises:
        UnsupportedLayerError: the model is not built, or a conv/dense layer has no single
            known input and output (a layer shared between calls).
    """
    result = summarize(model)
    if print_fn is not None:
        print_fn(result.table())
    return result
