"""Pruning that makes models smaller and faster: magnitude / N:M masks, Network Slimming, Deep Compression.

>>> from tfcompress.pruning import PolynomialDecay, PruningCallback, prune, strip
>>> pruned = prune(model, PolynomialDecay(0.0, 0.8, end_step=1000, frequency=50))  # doctest: +SKIP
>>> pruned.fit(data, callbacks=[PruningCallback()]); model = strip(pruned)  # doctest: +SKIP
"""

from tfcompress.pruning.layers import SharedConv2D, SharedDense, deep_compress
from tfcompress.pruning.masks import channel_mask, magnitude_mask, n_m_mask
from tfcompress.pruning.prune import (
    LayerReport,
    PruningCallback,
    PruningMask,
    copy_model,
    plan,
    prune,
    pruned_kernels,
    sparsity,
    strip,
)
from tfcompress.pruning.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule, ScheduleWarning

__all__ = [
    "ConstantSparsity",
    "LayerReport",
    "PolynomialDecay",
    "PruningCallback",
    "PruningMask",
    "PruningSchedule",
    "ScheduleWarning",
    "SharedConv2D",
    "SharedDense",
    "channel_mask",
    "copy_model",
    "deep_compress",
    "magnitude_mask",
    "n_m_mask",
    "plan",
    "prune",
    "pruned_kernels",
    "sparsity",
    "strip",
]

from tfcompress.pruning import lowering as _lowering  # noqa: F401  (registers the converter rules)
