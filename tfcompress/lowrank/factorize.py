"""``factorize``: one call from a trained model to its low-rank version."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import keras

from tfcompress.errors import TfcompressError
from tfcompress.lowrank.methods import FitOptions, Rank
from tfcompress.lowrank.plan import Plan, apply_plan, candidate_layers, make_plan
from tfcompress.lowrank.search import DEFAULT_FRACTIONS, Target, search_ranks
from tfcompress.skipped import SkippedLayer


def choose_plan(
    model: keras.Model,
    method: str = "tucker2",
    rank: Rank | Mapping[str, Rank] | str | None = None,
    *,
    energy: float | None = None,
    target: Target | tuple[str, float] | None = None,
    evaluate: Callable[[keras.Model], float] | None = None,
    layers: Sequence[str] | None = None,
    tucker_iterations: int = 0,
    cp_iterations: int = 100,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    rank_multiple: int = 1,
    threads: int = 1,
    verbose: int = 0,
) -> Plan:
    """The :class:`~tfcompress.lowrank.plan.Plan` that :func:`factorize` applies (same arguments).

    Its ``skipped`` lists every layer with a kernel left as it is, with the reason.
    """
    if sum(x is not None for x in (rank, energy, target)) != 1:
        raise TfcompressError("give exactly one of rank (int, pair, dict or 'vbmf'), energy and target")
    options = FitOptions(tucker_iterations=tucker_iterations, cp_iterations=cp_iterations)
    if target is None:
        return make_plan(model, method, rank=rank, energy=energy, layers=layers, options=options)
    if not isinstance(target, Target):
        target = Target(*target)
    result = search_ranks(
        model,
        method,
        target,
        evaluate,
        layers=layers,
        fractions=fractions,
        rank_multiple=rank_multiple,
        options=options,
        threads=threads,
        verbose=verbose,
    )
    selected, skipped = candidate_layers(model, layers)
    kept = [
        SkippedLayer.of(layer, "the search left it as it is")
        for layer, _ in selected
        if layer.name not in result.plan.ranks
    ]
    result.plan.skipped = [*skipped, *kept]
    return result.plan


def factorize(
    model: keras.Model,
    method: str = "tucker2",
    rank: Rank | Mapping[str, Rank] | str | None = None,
    *,
    energy: float | None = None,
    target: Target | tuple[str, float] | None = None,
    evaluate: Callable[[keras.Model], float] | None = None,
    layers: Sequence[str] | None = None,
    tucker_iterations: int = 0,
    cp_iterations: int = 100,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    rank_multiple: int = 1,
    threads: int = 1,
    verbose: int = 0,
) -> keras.Model:
    """A new model with Dense/Conv2D layers replaced by low-rank factors; ``model`` is unchanged.

    Args:
        model: a Functional or built Sequential Keras model.
        method: for ``kh x kw`` convs: ``"svd"`` (kxk then 1x1), ``"spatial_svd"`` (kx1 then
            1xk; Jaderberg et al. 2014), ``"tucker2"`` (1x1, kxk core, 1x1; Kim et al. 2016)
            or ``"cp"`` (1x1, depthwise kx1, depthwise 1xk, 1x1; Lebedev et al. 2015; a strided
            conv gets one depthwise kxk conv, the outer product of the two, instead).
            Dense layers and 1x1 convs always use truncated SVD.
        rank: one rank for every layer (a pair ``(r_in, r_out)`` for Tucker-2), a dict
            ``{layer name: rank}``, or ``"vbmf"`` (EVBMF, Nakajima et al. 2013).
        energy: instead, keep this fraction of each layer's squared singular values.
        target: instead, a budget (``Target("macs", 0.5)`` or ``("latency", 0.6)``) met by the
            greedy per-layer search with ``evaluate`` (see :mod:`tfcompress.lowrank.search`).
        evaluate: ``evaluate(model) -> score`` for the search (higher is better).
        layers: the layers to consider (default: all Dense/Conv2D layers; those a rank does
            not fit or would not make cheaper are left as they are).
        tucker_iterations: HOOI (ALS) sweeps after Tucker-2's HOSVD init.
        cp_iterations: CP-ALS iterations.
        fractions, rank_multiple, threads: search settings (candidate rank fractions, rank
            rounding, TFLite threads for latency).
        verbose: progress bars.

    Example:
        >>> from tfcompress.models import build_model
        >>> model = build_model("resnet8", num_classes=5, image_size=32, width=8)
        >>> small = factorize(model, "tucker2", target=("macs", 0.6))
        >>> small.count_params() < model.count_params()
        True

    Raises:
        TfcompressError: bad ranks, unknown method, unsupported named layers, or a target
            that cannot be met (the message names the closest reachable).
    """
    plan = choose_plan(
        model,
        method,
        rank,
        energy=energy,
        target=target,
        evaluate=evaluate,
        layers=layers,
        tucker_iterations=tucker_iterations,
        cp_iterations=cp_iterations,
        fractions=fractions,
        rank_multiple=rank_multiple,
        threads=threads,
        verbose=verbose,
    )
    return apply_plan(model, plan, verbose=verbose)
