"""Size accounting of a product-quantized model, with the formula of Stock et al. 2020.

Per PQ layer with ``n`` subvectors of ``d`` weights and ``k`` centroids::

    bits = n * ceil(log2 k)          (the codes: log2(k) / d bits per weight)
         + k * d * 16                (the codebook, float16)
         + C_out * 32                (the bias, if any, float32)

Every other weight (the float first layer, BatchNorm parameters and statistics, biases)
counts 32 bits. The float reference counts the decoded kernels at 32 bits as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np

from tfcompress.pq.layers import PQConv2D, PQDense


def code_bits(n_centroids: int) -> int:
    """Bits of one code: ``ceil(log2 k)`` (at least 1)."""
    return max(1, math.ceil(math.log2(n_centroids)))


@dataclass
class LayerSize:
    """Bytes of one layer as the paper counts them, and as float32."""

    name: str
    kind: str
    weights: int
    compressed_bytes: float
    float_bytes: int
    bits_per_weight: float


@dataclass
class SizeReport:
    """Per-layer and total sizes; ``compression`` = float bytes / compressed bytes."""

    layers: list[LayerSize] = field(default_factory=list)

    @property
    def compressed_bytes(self) -> float:
        return sum(layer.compressed_bytes for layer in self.layers)

    @property
    def float_bytes(self) -> int:
        return sum(layer.float_bytes for layer in self.layers)

    @property
    def compression(self) -> float:
        return self.float_bytes / max(self.compressed_bytes, 1e-9)

    def markdown(self) -> str:
        """A markdown table of the layers with weights, then the totals."""
        lines = [
            "| layer | kind | weights | bits/weight | bytes (PQ) | bytes (fp32) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for layer in self.layers:
            lines.append(
                f"| {layer.name} | {layer.kind} | {layer.weights:,} | {layer.bits_per_weight:.3f} | "
                f"{layer.compressed_bytes:,.0f} | {layer.float_bytes:,} |"
            )
        lines.append(
            f"| **total** | | | | **{self.compressed_bytes:,.0f}** | **{self.float_bytes:,}** "
            f"({self.compression:.1f}x) |"
        )
        return "\n".join(lines) + "\n"


def pq_layer_size(layer: PQConv2D | PQDense) -> LayerSize:
    """The paper's size of one PQ layer: codes, fp16 codebook and fp32 bias."""
    n_subvectors = int(np.prod(layer.codes.shape))
    kernel_weights = n_subvectors * layer.block_size
    bias = int(layer.bias.shape[0]) if layer.bias is not None else 0
    bits = n_subvectors * code_bits(layer.n_centroids) + layer.n_centroids * layer.block_size * 16 + bias * 32
    return LayerSize(
        name=layer.name,
        kind=f"PQ d={layer.block_size} k={layer.n_centroids}",
        weights=kernel_weights + bias,
        compressed_bytes=bits / 8,
        float_bytes=4 * (kernel_weights + bias),
        bits_per_weight=bits / (kernel_weights + bias),
    )


def size_report(model: keras.Model) -> SizeReport:
    """The paper's size of ``model``: PQ codes + fp16 codebooks, everything else fp32."""
    report = SizeReport()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, PQConv2D | PQDense):
            report.layers.append(pq_layer_size(layer))
        elif layer.weights and not layer._flatten_layers(include_self=False, recursive=False):
            count = sum(int(np.prod(v.shape)) for v in layer.weights)
            report.layers.append(LayerSize(layer.name, type(layer).__name__, count, 4.0 * count, 4 * count, 32.0))
    return report
