"""Plans: which layers to factorize, by which method and at which rank, and applying them.

A :class:`Plan` is decided from the weights alone (a fixed rank, kept energy, or EVBMF),
or by the greedy search of :mod:`tfcompress.lowrank.search`; :func:`apply_plan` fits the
factors and rebuilds the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.lowrank.graph import as_functional, replace_layers
from tfcompress.lowrank.methods import (
    FitOptions,
    LayerInfo,
    Rank,
    check_rank,
    describe,
    effective_method,
    factor_kernels,
    factorized_cost,
    original_cost,
    replacement_layers,
    selected_rank,
)
from tfcompress.skipped import SkippedLayer, attach_skipped, has_kernel


@dataclass(frozen=True)
class LayerPlan:
    """One layer's factorization and its cost before and after."""

    name: str
    method: str
    rank: Rank
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int


@dataclass
class Plan:
    """The layers to factorize, and the layers left alone with the reason.

    Attributes:
        method: the method asked for (Dense and 1x1 convs use SVD whatever it is).
        layers: the factorized layers.
        skipped: each layer with a kernel left as it is, with the reason.
        options: numerical options of the decompositions.
    """

    method: str
    layers: list[LayerPlan] = field(default_factory=list)
    skipped: list[SkippedLayer] = field(default_factory=list)
    options: FitOptions = field(default_factory=FitOptions)

    @property
    def ranks(self) -> dict[str, Rank]:
        """Layer name -> rank."""
        return {layer.name: layer.rank for layer in self.layers}

    def to_json(self) -> str:
        """The plan as JSON (a rank search's result, kept so that a resumed run does not search again)."""
        import json
        from dataclasses import asdict

        return json.dumps(
            {
                "method": self.method,
                "layers": [asdict(layer) for layer in self.layers],
                "skipped": [list(record) for record in self.skipped],
                "options": asdict(self.options),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan :meth:`to_json` wrote."""
        import json

        data = json.loads(text)
        layers = [
            LayerPlan(**{**layer, "rank": tuple(layer["rank"]) if isinstance(layer["rank"], list) else layer["rank"]})
            for layer in data["layers"]
        ]
        skipped = [SkippedLayer(*record) for record in data["skipped"]]
        return cls(data["method"], layers, skipped, FitOptions(**data["options"]))

    def summary(self) -> str:
        """A few lines: one per layer, then the totals over the factorized layers."""
        lines = []
        for p in self.layers:
            lines.append(
                f"{p.name}: {p.method} rank {p.rank}, MACs {p.macs_before:,} -> {p.macs_after:,}, "
                f"params {p.params_before:,} -> {p.params_after:,}"
            )
        lines.extend(f"kept {record}" for record in self.skipped)
        return "\n".join(lines)


def candidate_layers(
    model: keras.Model, layers: Sequence[str] | None = None
) -> tuple[list[tuple[keras.layers.Layer, LayerInfo]], list[SkippedLayer]]:
    """The layers to consider, with their info, and records of the ones left out.

    With ``layers=None`` every Dense/Conv2D layer of the model is considered, and every
    other layer with a kernel (depthwise convs, grouped convs, ...) is left out with a
    record. Named layers must all exist and be supported.

    Raises:
        TfcompressError: a named layer that does not exist.
        UnsupportedLayerError: a named layer that cannot be factorized.
    """
    model = as_functional(model)
    by_name = {layer.name: layer for layer in model.layers}
    found, skipped = [], []
    if layers is None:
        for layer in model.layers:
            if not has_kernel(layer):
                continue
            try:
                found.append((layer, describe(layer)))
            except UnsupportedLayerError as error:
                skipped.append(SkippedLayer.of(layer, str(error).removeprefix(f"layer {layer.name!r} ")))
        return found, skipped
    for name in layers:
        if name not in by_name:
            raise TfcompressError(f"no layer named {name!r} in model {model.name!r}")
        found.append((by_name[name], describe(by_name[name])))
    return found, skipped


def _layer_plan(layer: keras.layers.Layer, info: LayerInfo, method: str, rank: Rank) -> LayerPlan:
    macs_before, params_before = original_cost(info, layer)
    macs_after, params_after = factorized_cost(info, layer, method, rank)
    return LayerPlan(
        info.name,
        effective_method(info, method),
        rank,
        macs_before,
        macs_after,
        params_before,
        params_after,
    )


def make_plan(
    model: keras.Model,
    method: str = "tucker2",
    rank: Rank | Mapping[str, Rank] | str | None = None,
    energy: float | None = None,
    layers: Sequence[str] | None = None,
    options: FitOptions | None = None,
) -> Plan:
    """Decide the ranks from the weights alone.

    Args:
        model: a Functional or built Sequential model.
        method: ``"svd"``, ``"spatial_svd"``, ``"tucker2"`` or ``"cp"`` for ``kh x kw`` convs.
        rank: an int (a pair for Tucker-2) for every layer, a dict ``{name: rank}``
            (those layers only), or ``"vbmf"`` (EVBMF per layer, Kim et al. 2016).
        energy: instead of ``rank``, keep this fraction of each spectrum's energy.
        layers: the layers to consider (default: every Dense/Conv2D layer).
        options: numerical options of the decompositions.

    With ``layers=None``, a layer is left as it is (with a message in
    :attr:`Plan.skipped`) where the rank does not fit it or would not save MACs.

    Raises:
        TfcompressError: no rank rule, or two; a bad rank for a named layer; no layer
            that factorization would make cheaper.
    """
    effective_method(LayerInfo("", "conv", (3, 3, 1, 1), ()), method)  # validates the name
    if (rank is None) == (energy is None):
        raise TfcompressError("give exactly one of rank (an int, a pair, a dict or 'vbmf') and energy")
    if isinstance(rank, Mapping):
        if layers is not None:
            raise TfcompressError("a dict of ranks already names the layers; do not pass layers as well")
        layers = list(rank)
    strict = layers is not None
    selected, skipped = candidate_layers(model, layers)
    plan = Plan(method, skipped=skipped, options=options or FitOptions())
    for layer, info in selected:
        if isinstance(rank, Mapping):
            layer_rank = rank[info.name]
        elif rank == "vbmf":
            layer_rank = selected_rank(info, method, keras.ops.convert_to_numpy(layer.kernel), "vbmf")
        elif energy is not None:
            layer_rank = selected_rank(info, method, keras.ops.convert_to_numpy(layer.kernel), "energy", energy)
        elif isinstance(rank, str):
            raise TfcompressError(f"unknown rank rule {rank!r}; give an int, a pair, a dict or 'vbmf'")
        else:
            layer_rank = rank
        try:
            layer_rank = check_rank(info, method, layer_rank)
        except TfcompressError as error:
            if strict:
                raise
            plan.skipped.append(SkippedLayer.of(layer, str(error).split(": ", 1)[1]))
            continue
        layer_plan = _layer_plan(layer, info, method, layer_rank)
        if not strict and layer_plan.macs_after >= layer_plan.macs_before:
            plan.skipped.append(
                SkippedLayer.of(
                    layer,
                    f"rank {layer_rank} would not save MACs ({layer_plan.macs_after:,} >= {layer_plan.macs_before:,})",
                )
            )
            continue
        plan.layers.append(layer_plan)
    if not plan.layers:
        raise TfcompressError(
            "no layer would get cheaper with these ranks: "
            + ("; ".join(map(str, plan.skipped)) or "no Dense/Conv2D layers")
        )
    return plan


def plan_from_ranks(
    model: keras.Model, method: str, ranks: Mapping[str, Rank], options: FitOptions | None = None
) -> Plan:
    """A plan with exactly these layer ranks (validated)."""
    return make_plan(model, method, rank=dict(ranks), options=options)


def apply_plan(model: keras.Model, plan: Plan, verbose: int = 0) -> keras.Model:
    """Fit the factors of every planned layer and return the rebuilt model (``model`` unchanged).

    ``plan.skipped`` is attached to the result (:func:`tfcompress.skipped.skipped_layers`).
    """
    model = as_functional(model)
    by_name = {layer.name: layer for layer in model.layers}
    chains, kernels = {}, {}
    progress = keras.utils.Progbar(len(plan.layers), unit_name="layer") if verbose else None
    for layer_plan in plan.layers:
        layer = by_name[layer_plan.name]
        info = describe(layer)
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
        chains[layer.name] = replacement_layers(info, plan.method, layer_plan.rank, layer)
        kernels[layer.name] = factor_kernels(info, plan.method, layer_plan.rank, kernel, plan.options)
        if progress is not None:
            progress.add(1)
    return attach_skipped(replace_layers(model, chains, kernels), plan.skipped)


def replaced_layer_names(plan: Plan, model: keras.Model) -> dict[str, list[str]]:
    """Original layer name -> names of the layers that replace it in the factorized model."""
    model = as_functional(model)
    by_name = {layer.name: layer for layer in model.layers}
    return {
        p.name: [step.name for step in replacement_layers(describe(by_name[p.name]), plan.method, p.rank)]
        for p in plan.layers
    }
