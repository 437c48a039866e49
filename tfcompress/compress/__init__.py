"""One command from a trained Keras model to a small, fast ``.tflite``: recipes, stages, budgets.

>>> from tfcompress.compress import compress, load_recipe
>>> compress("model.keras", "small.tflite", load_recipe("slim+dc"), data_dir="photos/")  # doctest: +SKIP

- :mod:`~tfcompress.compress.recipes`: built-in recipes, ``+`` compositions, TOML recipes.
- :mod:`~tfcompress.compress.stages`: what each stage runs.
- :mod:`~tfcompress.compress.pipeline`: the resumable run, conversion and measurement.
- :mod:`~tfcompress.compress.budget`: the search for the smallest or fastest recipe within a budget.
"""

from tfcompress.compress.recipes import (
    BUILTIN_RECIPES,
    STAGE_DEFAULTS,
    Recipe,
    Stage,
    builtin_recipe,
    load_recipe,
    make_stage,
    with_overrides,
)

__all__ = [
    "BUILTIN_RECIPES",
    "STAGE_DEFAULTS",
    "CompressResult",
    "Recipe",
    "Stage",
    "StageRecord",
    "builtin_recipe",
    "compress",
    "load_recipe",
    "make_stage",
    "with_overrides",
]

_LAZY = {"CompressResult": "pipeline", "StageRecord": "pipeline", "compress": "pipeline"}


def __getattr__(name: str):
    """The pipeline's names, imported on first use (the recipes load without TensorFlow, for a quick ``--help``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"tfcompress.compress.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tfcompress.compress' has no attribute {name!r}")
