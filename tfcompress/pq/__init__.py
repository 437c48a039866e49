"""Product quantization as in "And the Bit Goes Down" (Stock et al. 2020, ICLR).

- :class:`PQConv2D`, :class:`PQDense`: layers whose kernels are ``codebook[codes]``.
- :func:`activation_aware_kmeans`: the EM with the whitening identity.
- :func:`quantize`: the bottom-up driver with distillation finetuning.
- :func:`size_report`: the paper's size accounting.

Importing the package registers the layers with Keras (for ``.keras`` files) and their
lowering rules with the converter (``TfcPQDecode`` / ``TfcPQDense`` custom ops).
"""

from tfcompress.pq import lowering  # noqa: F401  (registers the PQ layers' lowering rules)
from tfcompress.pq.em import PQFit, activation_aware_kmeans
from tfcompress.pq.layers import PQConv2D, PQDense
from tfcompress.pq.quantize import LayerRecord, ProductQuantizer, quantize
from tfcompress.pq.size import SizeReport, size_report

__all__ = [
    "LayerRecord",
    "PQConv2D",
    "PQDense",
    "PQFit",
    "ProductQuantizer",
    "SizeReport",
    "activation_aware_kmeans",
    "quantize",
    "size_report",
]
