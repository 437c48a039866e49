"""Choosing a rank from a spectrum: kept energy, and empirical variational Bayes (EVBMF).

Kept energy: the smallest ``r`` with ``sum_{h<=r} s_h^2 >= e * sum_h s_h^2``.

EVBMF (Nakajima, Sugiyama, Babacan & Tomioka 2013, "Global analytic solution of
fully-observed variational Bayesian matrix factorization", JMLR 14; noise estimation as in
Nakajima et al. 2012, "Perfect dimensionality recovery by variational Bayesian PCA"), the
rank selection Kim et al. (2016) apply to Tucker-2's unfoldings. For ``Y (L x M)`` with
``L <= M``, ``alpha = L / M`` and singular values ``g_h``, write ``x_h = g_h^2 / (M s2)``.
A component survives when ``x_h > x_bar = (1 + t)(1 + alpha / t)``, where ``t > 0`` solves

    psi1(t) = log(t + 1) + alpha log(t / alpha + 1) - t = 0,

and the noise variance ``s2`` minimises the free energy

    Omega(s2) = sum_h (x_h - log x_h) + sum_{x_h > x_bar} psi1(tau(x_h)),
    tau(x) = (x - (1 + alpha) + sqrt((x - (1 + alpha))^2 - 4 alpha)) / 2,

over ``[s2_low, s2_high]`` with ``s2_high = ||Y||^2 / (L M)`` and
``s2_low = max(g_{H+1}^2 / (M x_bar), sum_{h>H} g_h^2 / (M (L - H)))``,
``H = ceil(L / (1 + alpha)) - 1``. The rank is the number of surviving components.
"""

from __future__ import annotations

import math

import numpy as np

from tfcompress.errors import TfcompressError
from tfcompress.lowrank.decompose import singular_values


def energy_rank(values: np.ndarray, energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` of the squared total (at least 1).

    Raises:
        TfcompressError: ``energy`` is not in (0, 1].
    """
    if not 0.0 < energy <= 1.0:
        raise TfcompressError(f"energy must be in (0, 1], got {energy}")
    squares = np.asarray(values, np.float64) ** 2
    total = squares.sum()
    if total == 0.0:
        return 1
    kept = np.cumsum(squares) / total
    return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(squares)))


def _psi1(tau: np.ndarray | float, alpha: float):
    return np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    shifted = x - (1.0 + alpha)
    return 0.5 * (shifted + np.sqrt(np.maximum(shifted**2 - 4.0 * alpha, 0.0)))


def _threshold_tau(alpha: float) -> float:
    """The positive root of ``psi1(t) = 0`` (about ``2.5129 sqrt(alpha)``)."""
    from scipy.optimize import brentq

    return float(brentq(lambda t: _psi1(t, alpha), 1e-9, 1e4))


def evbmf_rank(matrix: np.ndarray) -> int:
    """The rank EVBMF keeps for ``matrix`` (0 when everything is noise)."""
    values = singular_values(matrix)
    rows, cols = sorted(matrix.shape)
    alpha = rows / cols
    tau_bar = _threshold_tau(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    squares = values[:rows] ** 2
    if squares.sum() == 0.0:
        return 0
    h_bar = min(math.ceil(rows / (1.0 + alpha)) - 1, rows - 1)
    high = squares.sum() / (rows * cols)
    low = max(squares[h_bar] / (cols * x_bar), squares[h_bar:].sum() / (cols * (rows - h_bar)))
    low = min(max(low, high * 1e-12), high)

    def free_energy(log_s2: float) -> float:
        x = squares / (cols * math.exp(log_s2))
        x = np.maximum(x, 1e-300)
        above = x[x > x_bar]
        return float(np.sum(x - np.log(x)) + np.sum(_psi1(_tau(above, alpha), alpha)))

    from scipy.optimize import minimize_scalar

    grid = np.linspace(math.log(low), math.log(high), 200)
    best = int(np.argmin([free_energy(g) for g in grid]))
    low_end, high_end = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    log_s2 = grid[best]
    if low_end < high_end:  # refine within the grid cell around the best point
        log_s2 = minimize_scalar(free_energy, bounds=(low_end, high_end), method="bounded").x
    return int(np.sum(squares / (cols * math.exp(log_s2)) > x_bar))
