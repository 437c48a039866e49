"""Interleaved latency measurement: every variant timed in every round, so all see the same load.

On a shared machine the load drifts over minutes; timing model A for a minute and then model B
compares two different machines. :func:`interleaved_latency` instead runs ``rounds`` rounds; in
each, every variant is called ``runs`` times in a row, and the order of the variants is rotated
from round to round (round ``r`` of ``R`` starts at variant ``floor(r * V / R)`` of ``V``), so a
burst of load, and the position in the round (caches, frequency), fall on all variants alike.

Per variant it reports (:class:`Latency`): the median over rounds of the per-round medians
(robust to a round hit by a burst), the smallest and largest round median (the spread), and the
90th percentile of all ``rounds x runs`` calls (the tail a user sees).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


@dataclass
class Latency:
    """Latency of one variant over the interleaved rounds, in milliseconds."""

    ms_median: float
    ms_p90: float
    ms_min: float
    ms_max: float
    round_medians: list[float]

    def to_dict(self, digits: int = 4) -> dict:
        """The fields, rounded to ``digits`` decimals of a millisecond."""
        return {
            key: [round(v, digits) for v in value] if isinstance(value, list) else round(value, digits)
            for key, value in asdict(self).items()
        }


def time_calls(call: Callable[[], object], runs: int) -> list[float]:
    """Wall time of each of ``runs`` consecutive calls of ``call``, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def round_order(keys: list[K], round_index: int, rounds: int) -> list[K]:
    """``keys`` rotated to start at ``floor(round_index * len(keys) / rounds)``."""
    start = (round_index * len(keys)) // max(rounds, 1) % max(len(keys), 1)
    return keys[start:] + keys[:start]


def interleaved_latency(
    calls: Mapping[K, Callable[[], object]],
    rounds: int,
    runs: int,
    warmup: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> dict[K, Latency]:
    """Time every callable of ``calls`` in ``rounds`` interleaved rounds of ``runs`` calls each.

    Args:
        calls: one zero-argument callable per variant (e.g. one invoke of an interpreter).
        rounds, runs: rounds, and consecutive timed calls per variant in each round (both >= 1).
        warmup: untimed calls of each variant before the first round.
        progress: called as ``progress(round_done, rounds)`` after each round.

    Raises:
        ValueError: ``rounds`` or ``runs`` below 1, or no variants.
    """
    if rounds < 1 or runs < 1:
        raise ValueError(f"rounds and runs must be >= 1, got rounds={rounds}, runs={runs}")
    keys = list(calls)
    if not keys:
        raise ValueError("no variants to time")
    for key in keys:
        for _ in range(warmup):
            calls[key]()
    samples: dict[K, list[list[float]]] = {key: [] for key in keys}
    for round_index in range(rounds):
        for key in round_order(keys, round_index, rounds):
            samples[key].append(time_calls(calls[key], runs))
        if progress is not None:
            progress(round_index + 1, rounds)
    result = {}
    for key, per_round in samples.items():
        medians = [float(np.median(times)) for times in per_round]
        result[key] = Latency(
            ms_median=float(np.median(medians)),
            ms_p90=float(np.percentile(np.concatenate(per_round), 90)),
            ms_min=min(medians),
            ms_max=max(medians),
            round_medians=medians,
        )
    return result
