"""Paired comparison of two classifiers on the same test images: is a top-1 gap real or noise?

On 650 test images one point of top-1 is 6.5 images, and the standard error of a single
accuracy near 75% is 1.7 points; but a compressed model and its teacher err on mostly the same
images, so their *difference* is far less noisy. With ``b`` the images only model A gets
right and ``c`` the images only model B gets right (the discordant pairs), ``n`` images:

    d = (b - c) / n,   se(d) = sqrt(b + c - (b - c)^2 / n) / n          (Wald, paired proportions)

and the exact McNemar test (McNemar 1947) of "A and B are equally accurate" is the two-sided
binomial test of ``b`` successes in ``b + c`` trials with p = 1/2 (Agresti, "Categorical Data
Analysis", sec. 10.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tfcompress.errors import TfcompressError


@dataclass(frozen=True)
class PairedDifference:
    """Top-1 of A minus top-1 of B on the same images, in points, with its confidence interval."""

    points: float  # 100 * (acc_A - acc_B)
    low: float  # confidence interval, points
    high: float
    only_a: int  # images A gets right and B wrong (b)
    only_b: int  # images B gets right and A wrong (c)
    images: int
    p_value: float  # exact McNemar test of equal accuracy

    def to_dict(self) -> dict:
        return asdict(self)


def paired_difference(correct_a, correct_b, confidence: float = 0.95) -> PairedDifference:
    """Compare two models' per-image correctness (booleans, same images in the same order).

    Raises:
        TfcompressError: the two vectors differ in length or are empty, or ``confidence`` is
            outside (0, 1).
    """
    from scipy.stats import binomtest, norm

    a = np.asarray(correct_a, bool).ravel()
    b = np.asarray(correct_b, bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise TfcompressError(
            f"paired comparison needs two equal, non-empty lists of results, got {a.size} and {b.size}"
        )
    if not 0.0 < confidence < 1.0:
        raise TfcompressError(f"confidence must be in (0, 1), got {confidence}")
    n = a.size
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    difference = (only_a - only_b) / n
    se = np.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    z = float(norm.ppf(0.5 + confidence / 2))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return PairedDifference(
        points=100 * difference,
        low=100 * (difference - z * se),
        high=100 * (difference + z * se),
        only_a=only_a,
        only_b=only_b,
        images=n,
        p_value=p_value,
    )
