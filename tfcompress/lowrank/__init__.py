"""Low-rank factorization of Dense and Conv2D layers: SVD, spatial SVD, Tucker-2 and CP.

>>> from tfcompress.lowrank import Target, factorize
>>> small = factorize(model, "tucker2", target=Target("macs", 0.5), evaluate=top1)  # doctest: +SKIP

The result is made of stock Keras layers (Dense, Conv2D, DepthwiseConv2D), so it converts
with the stock TFLite converter and composes with int8 and the other methods.
"""

from tfcompress.lowrank.cost import model_macs
from tfcompress.lowrank.factorize import choose_plan, factorize
from tfcompress.lowrank.finetune import finetune
from tfcompress.lowrank.methods import METHODS, FitOptions, max_rank
from tfcompress.lowrank.plan import LayerPlan, Plan, apply_plan, make_plan, replaced_layer_names
from tfcompress.lowrank.ranks import energy_rank, evbmf_rank
from tfcompress.lowrank.search import Candidate, SearchResult, Target, search_ranks, select_plan, top1_evaluator

__all__ = [
    "METHODS",
    "Candidate",
    "FitOptions",
    "LayerPlan",
    "Plan",
    "SearchResult",
    "Target",
    "apply_plan",
    "choose_plan",
    "energy_rank",
    "evbmf_rank",
    "factorize",
    "finetune",
    "make_plan",
    "max_rank",
    "model_macs",
    "replaced_layer_names",
    "search_ranks",
    "select_plan",
    "top1_evaluator",
]
