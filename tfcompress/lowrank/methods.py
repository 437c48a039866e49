"""Per-layer factorization: which layers qualify, the ranks they allow, and their replacements.

A replaceable layer is a stock ``keras.layers.Dense`` or ``keras.layers.Conv2D`` (exactly
those classes: subclasses such as quantized layers have their own semantics). Dense layers
and 1x1 convs are always factored by truncated SVD; a ``kh x kw`` conv by the chosen method:

===============  =====================================================  ===============
method           replacement (first to last; the last keeps bias, act.)  rank
===============  =====================================================  ===============
``svd``          ``kh x kw`` conv C->r, ``1x1`` conv r->N                 ``r <= min(kh kw C, N)``
``spatial_svd``  ``kh x 1`` conv C->r, ``1 x kw`` conv r->N               ``r <= min(kh C, kw N)``
``tucker2``      ``1x1`` C->r1, ``kh x kw`` r1->r2, ``1x1`` r2->N          ``(r1 <= C, r2 <= N)``
``cp``           ``1x1`` C->R, depthwise ``kh x 1``, ``1 x kw``, ``1x1``   ``R <= CP bound``
===============  =====================================================  ===============

Strides, padding and dilation are split across the spatial factors so that at full rank
the replacement computes exactly what the layer did (``same`` padding is separable by
axis, and a bias-free ``1x1`` conv maps the zero padding to zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.lowrank import decompose
from tfcompress.lowrank.cost import chain_cost, layer_cost
from tfcompress.lowrank.ranks import energy_rank, evbmf_rank

METHODS = ("svd", "spatial_svd", "tucker2", "cp")
Rank = int | tuple[int, int]


@dataclass(frozen=True)
class LayerInfo:
    """What factorization needs to know about one Dense/Conv2D layer and its (first) call."""

    name: str
    kind: str  # "dense" or "conv"
    kernel_shape: tuple[int, ...]
    input_shape: tuple
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    dilation: tuple[int, int] = (1, 1)

    @property
    def pointwise(self) -> bool:
        """Dense, or a 1x1 conv: both are a matrix product per position."""
        return self.kind == "dense" or tuple(self.kernel_shape[:2]) == (1, 1)


def is_factorizable_type(layer: keras.layers.Layer) -> bool:
    """True for stock Dense and Conv2D layers (the only classes factorization rewrites)."""
    return type(layer) in (keras.layers.Dense, keras.layers.Conv2D)


def describe(layer: keras.layers.Layer) -> LayerInfo:
    """The :class:`LayerInfo` of a called Dense/Conv2D layer.

    Raises:
        UnsupportedLayerError: another layer type, a grouped or channels-first conv, or a
            layer that is not part of a built graph.
    """
    if not is_factorizable_type(layer):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} is a {type(layer).__name__}; only Dense and Conv2D layers can be factorized"
        )
    if not layer._inbound_nodes or len(layer._inbound_nodes[0].input_tensors) != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r} is not called on one input in the model's graph")
    input_shape = tuple(layer._inbound_nodes[0].input_tensors[0].shape)
    kernel_shape = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Dense):
        return LayerInfo(layer.name, "dense", kernel_shape, input_shape)
    if layer.groups != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r} is a grouped conv (groups={layer.groups}); not supported")
    if layer.data_format != "channels_last":
        raise UnsupportedLayerError(f"layer {layer.name!r} is channels_first; only channels_last is supported")
    return LayerInfo(
        layer.name,
        "conv",
        kernel_shape,
        input_shape,
        tuple(layer.strides),
        layer.padding,
        tuple(layer.dilation_rate),
    )


def effective_method(info: LayerInfo, method: str) -> str:
    """The method actually used: SVD for Dense and 1x1 convs, ``method`` for ``kh x kw`` convs."""
    if method not in METHODS:
        raise TfcompressError(f"unknown factorization method {method!r}; choose one of {', '.join(METHODS)}")
    return "svd" if info.pointwise else method


def max_rank(info: LayerInfo, method: str) -> Rank:
    """The largest rank ``method`` allows for the layer (exact reconstruction, except CP)."""
    method = effective_method(info, method)
    if info.pointwise:
        return min(math.prod(info.kernel_shape[:-1]), info.kernel_shape[-1])
    kh, kw, c, n = info.kernel_shape
    if method == "svd":
        return min(kh * kw * c, n)
    if method == "spatial_svd":
        return min(kh * c, kw * n)
    if method == "tucker2":
        return (c, n)
    dims = (kh, kw, c, n)
    return math.prod(dims) // max(dims)


def check_rank(info: LayerInfo, method: str, rank: Rank) -> Rank:
    """Validate ``rank`` for the layer; an int means both modes for Tucker-2.

    Raises:
        TfcompressError: a rank that is not positive, or larger than the layer allows.
    """
    method = effective_method(info, method)
    limit = max_rank(info, method)
    if method == "tucker2":
        ranks = (rank, rank) if isinstance(rank, int | np.integer) else tuple(rank)
        if len(ranks) != 2:
            raise TfcompressError(f"layer {info.name!r}: a Tucker-2 rank is an int or a pair, got {rank!r}")
        for value, bound, mode in zip(ranks, limit, ("input", "output"), strict=True):
            if int(value) <= 0:
                raise TfcompressError(f"layer {info.name!r}: rank must be positive, got {rank!r}")
            if int(value) > bound:
                raise TfcompressError(
                    f"layer {info.name!r}: Tucker-2 {mode} rank {value} is larger than its {bound} channels"
                )
        return int(ranks[0]), int(ranks[1])
    if not isinstance(rank, int | np.integer):
        raise TfcompressError(f"layer {info.name!r}: {method} takes one integer rank, got {rank!r}")
    if rank <= 0:
        raise TfcompressError(f"layer {info.name!r}: rank must be positive, got {rank}")
    if rank > limit:
        raise TfcompressError(f"layer {info.name!r}: rank {rank} is larger than {method} allows here (at most {limit})")
    return int(rank)


def _conv(name: str, filters: int, kernel, strides=(1, 1), padding="valid", dilation=(1, 1), dtype=None):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        use_bias=False,
        name=name,
        dtype=dtype,
    )


def _depthwise(name: str, kernel, strides, padding, dilation, dtype=None):
    return keras.layers.DepthwiseConv2D(
        kernel, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False, name=name, dtype=dtype
    )


def replacement_layers(
    info: LayerInfo, method: str, rank: Rank, original: keras.layers.Layer | None = None
) -> list[keras.layers.Layer]:
    """The unbuilt stock layers replacing the layer, first to last.

    With ``original`` the last layer takes its bias flag, activation and dtype policy;
    the others are linear and bias-free.
    """
    layers = _plain_replacement(info, method, rank, original.dtype_policy if original is not None else None)
    return [*layers[:-1], _with_output_of(layers[-1], original)]


def _plain_replacement(info: LayerInfo, method: str, rank: Rank, dtype) -> list[keras.layers.Layer]:
    method = effective_method(info, method)
    rank = check_rank(info, method, rank)
    name, n = info.name, info.kernel_shape[-1]
    if info.kind == "dense":
        return [
            keras.layers.Dense(rank, use_bias=False, name=f"{name}_svd_u", dtype=dtype),
            keras.layers.Dense(n, use_bias=False, name=f"{name}_svd_v", dtype=dtype),
        ]
    kh, kw = info.kernel_shape[:2]
    (sh, sw), (dh, dw), pad = info.strides, info.dilation, info.padding
    if method == "svd":
        return [
            _conv(f"{name}_svd_u", rank, (kh, kw), info.strides, pad, info.dilation, dtype),
            _conv(f"{name}_svd_v", n, 1, dtype=dtype),
        ]
    if method == "spatial_svd":
        return [
            _conv(f"{name}_ssvd_v", rank, (kh, 1), (sh, 1), pad, (dh, 1), dtype),
            _conv(f"{name}_ssvd_h", n, (1, kw), (1, sw), pad, (1, dw), dtype),
        ]
    if method == "tucker2":
        return [
            _conv(f"{name}_tk_in", rank[0], 1, dtype=dtype),
            _conv(f"{name}_tk_core", rank[1], (kh, kw), info.strides, pad, info.dilation, dtype),
            _conv(f"{name}_tk_out", n, 1, dtype=dtype),
        ]
    if cp_merges_depthwise(info):
        return [
            _conv(f"{name}_cp_in", rank, 1, dtype=dtype),
            _depthwise(f"{name}_cp_vh", (kh, kw), (sh, sw), pad, (dh, dw), dtype),
            _conv(f"{name}_cp_out", n, 1, dtype=dtype),
        ]
    return [
        _conv(f"{name}_cp_in", rank, 1, dtype=dtype),
        _depthwise(f"{name}_cp_v", (kh, 1), (1, 1), pad, (dh, 1), dtype),
        _depthwise(f"{name}_cp_h", (1, kw), (1, 1), pad, (1, dw), dtype),
        _conv(f"{name}_cp_out", n, 1, dtype=dtype),
    ]


def cp_merges_depthwise(info: LayerInfo) -> bool:
    """Whether CP replaces a strided conv's kx1 and 1xk depthwise factors by one kxk depthwise conv.

    Split, a stride ``(s_h, s_w)`` would go to the factors as ``(s_h, 1)`` and ``(1, s_w)``:
    depthwise convolutions with unequal strides, which TensorFlow's own CPU kernels reject.
    Their composition is one depthwise conv whose per-channel kernel is the outer product
    ``K_r[i, j] = v_r[i] h_r[j]`` with stride ``(s_h, s_w)``: the same result (padding, stride and
    dilation act on each axis alone), and for ``k = 3, s = 2`` the same MACs per output,
    ``R k^2 / s^2 = R (k / s + k / s^2)``, at ``R k^2`` instead of ``2 R k`` weights.
    """
    return tuple(info.strides) != (1, 1)


def _with_output_of(last: keras.layers.Layer, original: keras.layers.Layer | None) -> keras.layers.Layer:
    """``last`` re-made with the original layer's bias flag and activation."""
    if original is None:
        return last
    config = last.get_config()
    config["use_bias"] = original.use_bias
    config["activation"] = keras.activations.serialize(original.activation)
    return type(last).from_config(config)


@dataclass(frozen=True)
class FitOptions:
    """Numerical options of the decompositions.

    Attributes:
        tucker_iterations: HOOI/ALS sweeps after the HOSVD init (0: HOSVD only).
        cp_iterations: CP-ALS iterations.
        seed: seed of CP-ALS (for modes the SVD init has to pad).
    """

    tucker_iterations: int = 0
    cp_iterations: int = 100
    seed: int = 0


def factor_kernels(info: LayerInfo, method: str, rank: Rank, kernel: np.ndarray, options: FitOptions) -> list:
    """The kernels of :func:`replacement_layers`, fitted to ``kernel`` (the last one's bias is the original's)."""
    method = effective_method(info, method)
    rank = check_rank(info, method, rank)
    kernel = np.asarray(kernel)
    if method == "svd" and info.pointwise:
        return decompose.dense_svd(kernel, rank)
    if method == "svd":
        return decompose.conv_weight_svd(kernel, rank)
    if method == "spatial_svd":
        return decompose.spatial_svd(kernel, rank)
    if method == "tucker2":
        return decompose.tucker2(kernel, rank, options.tucker_iterations)
    first, vertical, horizontal, last = decompose.cp(kernel, rank, options.cp_iterations, options.seed)
    if cp_merges_depthwise(info):
        return [first, vertical * horizontal, last]  # (kh,1,R,1) * (1,kw,R,1): the outer product per channel
    return [first, vertical, horizontal, last]


def _spectra(info: LayerInfo, method: str, kernel: np.ndarray) -> list[np.ndarray]:
    """The matrices whose spectra decide the rank (two unfoldings for Tucker-2 and CP)."""
    method = effective_method(info, method)
    if info.pointwise:
        return [decompose.dense_matrix(kernel)]
    if method == "svd":
        return [kernel.reshape(-1, kernel.shape[-1])]
    if method == "spatial_svd":
        return [decompose.spatial_matrix(kernel)]
    return list(decompose.channel_unfoldings(kernel))


def selected_rank(info: LayerInfo, method: str, kernel: np.ndarray, criterion: str, energy: float = 0.9) -> Rank:
    """Rank by ``criterion``: ``"energy"`` (kept energy ``energy``) or ``"vbmf"`` (EVBMF).

    Tucker-2 takes one rank per unfolding (Kim et al. 2016); CP, for which no spectrum
    is defined, takes the larger of those two ranks.
    """
    method = effective_method(info, method)
    if criterion == "energy":
        ranks = [energy_rank(decompose.singular_values(m), energy) for m in _spectra(info, method, kernel)]
    elif criterion == "vbmf":
        ranks = [max(evbmf_rank(m), 1) for m in _spectra(info, method, kernel)]
    else:
        raise TfcompressError(f"unknown rank criterion {criterion!r}; use 'energy' or 'vbmf'")
    if method == "tucker2":
        return ranks[0], ranks[1]
    return min(max(ranks), max_rank(info, method))


def original_cost(info: LayerInfo, layer: keras.layers.Layer) -> tuple[int, int]:
    """``(macs, params)`` of the layer as it is."""
    macs, params, _ = layer_cost(layer, info.input_shape)
    return macs, params


def factorized_cost(info: LayerInfo, layer: keras.layers.Layer, method: str, rank: Rank) -> tuple[int, int]:
    """``(macs, params)`` of the layer's replacement at ``rank`` (bias included)."""
    return chain_cost(replacement_layers(info, method, rank, layer), info.input_shape)


def candidate_ranks(info: LayerInfo, layer: keras.layers.Layer, method: str, fractions, multiple: int = 1) -> list:
    """Ranks at ``fractions`` of the full rank that make the layer cheaper, smallest first.

    Ranks are rounded up to a multiple of ``multiple`` (channel counts that SIMD kernels
    like) where the full rank allows; duplicates are dropped.
    """
    method = effective_method(info, method)
    limit = max_rank(info, method)
    base_macs, _ = original_cost(info, layer)
    bounds = limit if isinstance(limit, tuple) else (limit,)
    if method == "cp":
        # CP's bound is loose; scale against the Tucker-like channel count instead.
        bounds = (max(info.kernel_shape[2], info.kernel_shape[3]),)
    found = []
    for fraction in sorted(fractions):
        values = []
        for bound in bounds:
            value = max(1, math.ceil(fraction * bound))
            if multiple > 1 and bound >= 2 * multiple:
                value = min(bound, math.ceil(value / multiple) * multiple)
            values.append(value)
        rank = tuple(values) if method == "tucker2" else values[0]
        if rank in found:
            continue
        if factorized_cost(info, layer, method, rank)[0] < base_macs:
            found.append(rank)
    return found
