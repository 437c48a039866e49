"""Greedy per-layer rank selection that meets a budget while losing the least accuracy.

The selection of AIMET's greedy compression-ratio search (Qualcomm AIMET, "greedy
comp-ratio selection"), extended from MACs to parameters and measured TFLite latency:

1. For each layer ``l`` and candidate rank ``r`` (fractions of the full rank that make the
   layer cheaper), factorize **only** that layer and score the model with the evaluation
   callback: ``score[l, r]`` (e.g. top-1 on held-out images). Without a callback a
   data-free proxy is used: minus the relative error of the layer's output on random
   post-ReLU-like inputs.
2. The saving of each candidate, ``delta[l, r]``, is exact for MACs and parameters and
   measured for latency (the layer alone vs. its replacement, each converted and timed).
3. For an accuracy threshold ``t``, each layer takes its cheapest candidate with
   ``score >= t`` (or stays whole). The cost ``base + sum_l delta[l, r_l(t)]`` only falls
   as ``t`` falls, so the highest ``t`` whose cost meets ``ratio x base`` is the answer.
   For latency the chosen model is converted and timed, and ``t`` is lowered further
   while the measured latency misses the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.lowrank.cost import model_macs
from tfcompress.lowrank.graph import as_functional
from tfcompress.lowrank.latency import chain_model, tflite_latency_ms
from tfcompress.lowrank.methods import (
    FitOptions,
    LayerInfo,
    Rank,
    candidate_ranks,
    factorized_cost,
    original_cost,
)
from tfcompress.lowrank.plan import Plan, apply_plan, candidate_layers, plan_from_ranks

METRICS = ("macs", "params", "latency")
DEFAULT_FRACTIONS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


@dataclass(frozen=True)
class Target:
    """Keep ``ratio`` of the whole model's ``metric`` (``"macs"``, ``"params"`` or ``"latency"``).

    Example: ``Target("macs", 0.5)`` halves the MACs.
    """

    metric: str
    ratio: float

    def __post_init__(self):
        if self.metric not in METRICS:
            raise TfcompressError(f"unknown target metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if not 0.0 < self.ratio < 1.0:
            raise TfcompressError(f"target ratio must be in (0, 1), got {self.ratio} for {self.metric}")


@dataclass(frozen=True)
class Candidate:
    """One (layer, rank) option: its score and how much it changes the model's cost."""

    rank: Rank
    score: float
    cost_delta: float


@dataclass
class SearchResult:
    """The chosen plan and what the search saw.

    Attributes:
        plan: the ranks chosen.
        target: the budget asked for.
        baseline_cost: the whole model's cost before (MACs, parameters or ms).
        expected_cost: the cost the per-layer table predicts for the plan.
        measured_cost: the measured latency of the plan (latency targets only).
        baseline_score: the callback's score of the unfactorized model (``None`` without one).
        threshold: the per-layer score threshold the plan meets.
        table: layer name -> its candidates.
    """

    plan: Plan
    target: Target
    baseline_cost: float
    expected_cost: float
    measured_cost: float | None = None
    baseline_score: float | None = None
    threshold: float = 0.0
    table: dict[str, list[Candidate]] = field(default_factory=dict)

    @property
    def achieved_ratio(self) -> float:
        """Cost after / cost before (measured for latency, exact otherwise)."""
        cost = self.measured_cost if self.measured_cost is not None else self.expected_cost
        return cost / self.baseline_cost


def top1_evaluator(
    data_dir, image_size: int, images: int | None = 300, split: str = "val"
) -> Callable[[keras.Model], float]:
    """``evaluate(model) -> top-1`` on ``images`` images of ``split`` (a fixed hash-ordered sample)."""
    from tfcompress.data import load_split

    data = load_split(data_dir, split, image_size, limit=images)
    pixels = data.images.astype(np.float32)

    def evaluate(model: keras.Model) -> float:
        # Direct calls: model.predict would trace a new function for every candidate model.
        logits = [np.asarray(model(pixels[i : i + 64], training=False)) for i in range(0, len(pixels), 64)]
        return float(np.mean(np.argmax(np.concatenate(logits), axis=1) == data.labels))

    return evaluate


def _single_layer_model(layer: keras.layers.Layer, info: LayerInfo) -> keras.Model:
    return chain_model([layer], info.input_shape)


def _proxy_score(layer, info: LayerInfo, factored: keras.Model, single: keras.Model, seed: int = 0) -> float:
    """Minus the relative output error of the replacement on random non-negative inputs."""
    shape = (2, *info.input_shape[1:])
    inputs = np.maximum(np.random.default_rng(seed).normal(size=shape), 0.0).astype(np.float32)
    reference = keras.ops.convert_to_numpy(single(inputs))
    approx = keras.ops.convert_to_numpy(factored(inputs))
    return -float(np.linalg.norm(approx - reference) / max(np.linalg.norm(reference), 1e-12))


def _choose(table: dict[str, list[Candidate]], threshold: float) -> tuple[dict[str, Rank], float]:
    ranks, delta = {}, 0.0
    for name, rows in table.items():
        allowed = [row for row in rows if row.score >= threshold and row.cost_delta < 0]
        if allowed:
            best = min(allowed, key=lambda row: row.cost_delta)
            ranks[name] = best.rank
            delta += best.cost_delta
    return ranks, delta


def search_ranks(
    model: keras.Model,
    method: str,
    target: Target,
    evaluate: Callable[[keras.Model], float] | None = None,
    layers: Sequence[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    rank_multiple: int = 1,
    options: FitOptions | None = None,
    threads: int = 1,
    latency_checks: int = 4,
    verbose: int = 1,
    known: Mapping[str, list[Candidate]] | None = None,
    on_layer: Callable[[str, list[Candidate]], None] | None = None,
) -> SearchResult:
    """Choose per-layer ranks that meet ``target`` with the highest per-layer score threshold.

    Args:
        model: a Functional or built Sequential model (not modified).
        method: the conv method (see :mod:`tfcompress.lowrank.methods`).
        target: the budget.
        evaluate: ``evaluate(model) -> score``, higher is better (e.g. top-1 on a few
            hundred validation images); ``None`` uses the data-free proxy.
        layers: the layers to consider (default: every Dense/Conv2D layer).
        fractions: candidate ranks as fractions of each layer's full rank.
        rank_multiple: round candidate ranks up to this multiple (8 suits XNNPACK).
        options: numerical options of the decompositions.
        threads: TFLite threads for latency targets.
        latency_checks: how many lower thresholds to try when a measured latency misses.
        verbose: show a progress bar over the layers.
        known: candidates already scored (e.g. by an interrupted run); those layers are
            not scored again.
        on_layer: called with each layer's candidates as soon as they are scored (to save
            progress).

    Raises:
        TfcompressError: the target cannot be met; the message gives the closest reachable
            ratio.
    """
    model = as_functional(model)
    options = options or FitOptions()
    selected, _ = candidate_layers(model, layers)
    if target.metric == "macs":
        baseline = float(model_macs(model))
    elif target.metric == "params":
        baseline = float(model.count_params())
    else:
        baseline = tflite_latency_ms(model, threads)
    baseline_score = evaluate(model) if evaluate is not None else None
    table: dict[str, list[Candidate]] = {}
    progress = keras.utils.Progbar(len(selected), unit_name="layer") if verbose else None
    for layer, info in selected:
        if known is not None and info.name in known:
            table[info.name] = list(known[info.name])
            if progress is not None:
                progress.add(1)
            continue
        rows = []
        single = _single_layer_model(layer, info) if evaluate is None or target.metric == "latency" else None
        single_latency = tflite_latency_ms(single, threads) if target.metric == "latency" else None
        for rank in candidate_ranks(info, layer, method, fractions, rank_multiple):
            plan = plan_from_ranks(model, method, {info.name: rank}, options)
            if evaluate is not None:
                score = float(evaluate(apply_plan(model, plan)))
            else:
                factored = apply_plan(single, plan_from_ranks(single, method, {info.name: rank}, options))
                score = _proxy_score(layer, info, factored, single)
            if target.metric == "latency":
                factored = apply_plan(single, plan_from_ranks(single, method, {info.name: rank}, options))
                delta = tflite_latency_ms(factored, threads) - single_latency
            else:
                before = original_cost(info, layer)
                after = factorized_cost(info, layer, method, rank)
                delta = float(after[0] - before[0]) if target.metric == "macs" else float(after[1] - before[1])
            rows.append(Candidate(rank, score, delta))
        table[info.name] = rows
        if on_layer is not None:
            on_layer(info.name, rows)
        if progress is not None:
            progress.add(1)
    return select_plan(model, method, target, table, baseline, baseline_score, options, threads, latency_checks)


def select_plan(
    model: keras.Model,
    method: str,
    target: Target,
    table: dict[str, list[Candidate]],
    baseline: float,
    baseline_score: float | None = None,
    options: FitOptions | None = None,
    threads: int = 1,
    latency_checks: int = 4,
) -> SearchResult:
    """Step 3 of the search on an existing table (so one table serves several targets).

    Raises:
        TfcompressError: the target cannot be met; the message gives the closest reachable.
    """
    model = as_functional(model)
    options = options or FitOptions()
    budget = target.ratio * baseline
    thresholds = sorted({row.score for rows in table.values() for row in rows}, reverse=True)
    if not thresholds:
        raise TfcompressError(f"no layer of {model.name!r} can be made cheaper with method {method!r}")
    floor = _choose(table, -np.inf)[1]
    if baseline + floor > budget:
        raise TfcompressError(
            f"target {target.metric} {target.ratio:g} cannot be reached with {method} and these candidate ranks; "
            f"the closest reachable is {(baseline + floor) / baseline:.3f}"
        )
    misses = 0
    closest = None
    for threshold in thresholds:
        ranks, delta = _choose(table, threshold)
        if not ranks or baseline + delta > budget:
            continue
        plan = plan_from_ranks(model, method, ranks, options)
        result = SearchResult(plan, target, baseline, baseline + delta, None, baseline_score, threshold, table)
        if target.metric != "latency":
            return result
        measured = tflite_latency_ms(apply_plan(model, plan), threads)
        result.measured_cost = measured
        closest = measured if closest is None else min(closest, measured)
        if measured <= budget:
            return result
        misses += 1
        if misses > latency_checks:
            break
    raise TfcompressError(
        f"target latency {target.ratio:g} was not met when measured; the closest reachable was "
        f"{closest / baseline:.3f} of {baseline:.2f} ms"
    )
