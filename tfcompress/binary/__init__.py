"""Binarized / XNOR networks: sign quantizers, ``BinaryConv2D``, ``BinaryDense``, ``summary``.

>>> from tfcompress.binary import BinaryConv2D, summary
>>> layer = BinaryConv2D(32, 3, padding="same", pad_values=1.0,
...                      input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign",
...                      kernel_constraint="weight_clip", use_bias=False)

Importing this package also registers the binary models of the zoo
(``tfcompress.models.build_model("binary_resnet18", ...)``).
"""

from tfcompress.binary import (
    quantizers,
    zoo,  # noqa: F401  (registers binary_resnet18 in the model zoo)
)
from tfcompress.binary.layers import BinaryConv2D, BinaryDense
from tfcompress.binary.quantizers import (
    ApproxSign,
    MagnitudeAwareSign,
    Quantizer,
    SteSign,
    SwishSign,
    WeightClip,
    approx_sign,
    magnitude_aware_sign,
    ste_sign,
    swish_sign,
)
from tfcompress.summary import LayerSummary, ModelSummary, summarize, summary

__all__ = [
    "ApproxSign",
    "BinaryConv2D",
    "BinaryDense",
    "LayerSummary",
    "MagnitudeAwareSign",
    "ModelSummary",
    "Quantizer",
    "SteSign",
    "SwishSign",
    "WeightClip",
    "approx_sign",
    "magnitude_aware_sign",
    "quantizers",
    "ste_sign",
    "summarize",
    "summary",
    "swish_sign",
]
from tfcompress.binary import lowering  # noqa: F401  (registers the binary ops' lowering rules)
