"""Recipes: the stages a ``tfcompress compress`` run applies, in order, and their options.

A recipe is a list of :class:`Stage` (a method and its options). It is named in one of three
ways:

- a built-in name of :data:`BUILTIN_RECIPES` (``int8``, ``pq``, ``pruned``, ``dc``, ``slim``,
  ``lowrank``, ``binary``);
- built-in names joined by ``+`` (``slim+dc``, ``slim+pq``, ``lowrank+int8``, ...): their
  stages one after the other, a stage that two parts share taken once;
- a TOML file (``my.toml``) listing the stages, for example::

      name = "slim-then-pq"
      [[stage]]
      method = "slim"
      ratio = 0.4
      [[stage]]
      method = "pq"
      block_size = "large"

Options a stage does not name keep the defaults of :data:`STAGE_DEFAULTS`; an unknown
method or option, a value of the wrong type, or an impossible order (``int8`` anywhere but
last, ``int8`` after a stage whose layers become custom ops) is refused before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfcompress.errors import TfcompressError

#: Every stage's options and their defaults. ``epochs`` is the stage's finetuning epochs
#: (distilled from the input model); ``--epochs`` on the command line overrides it everywhere.
STAGE_DEFAULTS: dict[str, dict[str, object]] = {
    # Network Slimming (Liu et al. 2017): L1 on BatchNorm gamma, one global threshold, rebuild thinner.
    # ``learning_rate = "auto"``: the largest step (of ``optimizer``'s candidates; "auto": SGD's and AdamW's)
    # that does the model no harm, probed on it (tfcompress.compress.finetune_choice); opt-in for now.
    "slim": {
        "ratio": 0.5,
        "penalty_epochs": 3,
        "l1": 1e-4,
        "epochs": 10,
        "optimizer": "sgd",
        "learning_rate": "0.01",
        "batchnorm": "auto",
    },
    # Low-rank factorization: ranks searched for a fraction of the MACs, scored on validation images.
    "lowrank": {
        "method": "tucker2",
        "target_macs": 0.6,
        "eval_images": 200,
        "rank_multiple": 8,
        "epochs": 6,
        "optimizer": "sgd",
        "learning_rate": "0.01",
        "batchnorm": "auto",
    },
    # Magnitude pruning on a polynomial schedule (Zhu & Gupta 2017).
    "prune": {
        "sparsity": 0.8,
        "allocation": "global",
        "epochs": 6,
        "optimizer": "sgd",
        "learning_rate": "0.01",
        "batchnorm": "auto",
    },
    # Deep Compression's weight sharing + trained quantization (Han et al. 2016); Huffman in the file.
    "share": {"conv_bits": 5, "dense_bits": 5, "epochs": 1, "learning_rate": 0.002, "batchnorm": "auto"},
    # Product quantization, And the Bit Goes Down (Stock et al. 2020). ``epochs`` are passes over the
    # calibration images: 25 x 512 images = 400 codebook steps of 32, the paper's global finetune.
    # ``block_size = "auto"``: "mobile" (d = 2 for 1x1 convs) in a network with depthwise convs, else
    # the paper's "small" (tfcompress.pq.quantize.BLOCK_PRESETS).
    "pq": {
        "block_size": "auto",
        "centroids": 256,
        "centroids_dense": 256,
        "calibration_images": 512,
        "em_iterations": 30,
        "layer_steps": 0,
        "epochs": 25,
        "learning_rate": 2e-4,
        "temperature": 2.0,
        "batchnorm": "auto",
    },
    # A binary student (Bi-Real ResNet-18 of the zoo) distilled from the input in Real-to-Binary's two stages
    # (Martinez et al. 2020), ``epochs`` each, attention matched at every resolution the two share; its
    # float stem, shortcuts and classifier get int8 weights in the file. A recipe of its own.
    # ``width = "auto"``: the filters of the model's first convolution (its stem), else a channel count.
    "binary": {
        "student": "binary_resnet18",
        "width": "auto",
        "epochs": 40,
        "learning_rate": 2e-3,
        "weight_decay": 1e-5,
        "temperature": 4.0,
        "alpha": 0.1,
        "attention": "auto",
    },
    # Full-integer post-training quantization by the TFLite converter (a conversion setting; last).
    "int8": {"calibration_images": 200},
}

#: ``batchnorm`` of a finetuning stage: ``update`` runs BatchNorm in training mode (its statistics follow
#: the batches; SGD at ``learning_rate``), ``freeze`` keeps it in inference mode (AdamW at
#: ``learning_rate`` x 0.01; PQ's codebook finetune at its own rate), ``auto`` freezes in the stages
#: that train only codebooks or centroids (pq, share) when the statistics of the model they get were
#: not learned on the data (:func:`tfcompress.compress.pipeline.resolve_batchnorm`), else updates.
BATCHNORM_MODES = ("auto", "update", "freeze")

#: The values a string option may take (checked with the recipe, before any work): the PQ block-size
#: presets of :data:`tfcompress.pq.quantize.BLOCK_PRESETS` (or a block size), the low-rank methods of
#: :data:`tfcompress.lowrank.methods.METHODS`, the pruning allocations of
#: :data:`tfcompress.pruning.prune.ALLOCATIONS` (tests hold these lists to those modules').
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pq", "block_size"): ("auto", "small", "large", "mobile"),
    ("lowrank", "method"): ("svd", "spatial_svd", "tucker2", "cp"),
    ("prune", "allocation"): ("layer", "global"),
    ("slim", "optimizer"): ("auto", "sgd", "adam"),
    ("lowrank", "optimizer"): ("auto", "sgd", "adam"),
    ("prune", "optimizer"): ("auto", "sgd", "adam"),
}

#: Stages whose ``learning_rate`` may be ``"auto"`` (else a positive number).
AUTO_LEARNING_RATE = ("slim", "lowrank", "prune")

#: Stages whose layers become ``Tfc*`` custom ops: int8 conversion cannot follow them.
CUSTOM_OP_STAGES = ("pq", "share", "binary")

#: Stages that train (and so take ``--epochs``).
TRAINING_STAGES = ("slim", "lowrank", "prune", "share", "pq", "binary")

#: The built-in recipes; ``a+b`` composes them.
BUILTIN_RECIPES: dict[str, tuple[str, ...]] = {
    "int8": ("int8",),
    "pq": ("pq",),
    "pruned": ("prune",),
    "dc": ("prune", "share"),
    "slim": ("slim",),
    "lowrank": ("lowrank",),
    "binary": ("binary",),
}

#: One line per built-in recipe, for ``--help`` and the card.
RECIPE_DESCRIPTIONS = {
    "int8": "full-integer post-training quantization (stock ops)",
    "pq": "product quantization of conv/dense kernels (TfcPQ* custom ops)",
    "pruned": "80% magnitude pruning, stored as TFLite sparse tensors (stock ops)",
    "dc": "Deep Compression: prune, share weights (5 bits), Huffman-code (TfcSparseDecode)",
    "slim": "Network Slimming: remove half of the BatchNorm channels (stock ops, faster)",
    "lowrank": "Tucker-2 / SVD factorization to 60% of the MACs (stock ops, faster)",
    "binary": "a binary ResNet-18 distilled from the model, Real-to-Binary (TfcBinaryConv2D, int8 weights elsewhere)",
}


@dataclass(frozen=True)
class Stage:
    """One step of a recipe: a method of :data:`STAGE_DEFAULTS` and all its options."""

    method: str
    options: Mapping[str, object] = field(default_factory=dict)

    def option(self, name: str):
        """The value of option ``name``."""
        return self.options[name]

    def describe(self) -> str:
        """``method(option=value, ...)``, only the options that differ from the defaults."""
        changed = {k: v for k, v in self.options.items() if STAGE_DEFAULTS[self.method].get(k) != v}
        return self.method + ("(" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")" if changed else "")


@dataclass(frozen=True)
class Recipe:
    """A named list of stages. ``int8`` is true when the last stage is the int8 conversion."""

    name: str
    stages: tuple[Stage, ...]

    @property
    def int8(self) -> bool:
        return bool(self.stages) and self.stages[-1].method == "int8"

    @property
    def training_stages(self) -> tuple[Stage, ...]:
        """The stages that change the Keras model (all but ``int8``)."""
        return tuple(stage for stage in self.stages if stage.method != "int8")

    def option(self, method: str, name: str):
        """Option ``name`` of the first stage of ``method``."""
        for stage in self.stages:
            if stage.method == method:
                return stage.option(name)
        raise KeyError(method)

    def to_dict(self) -> dict:
        return {"name": self.name, "stages": [{"method": s.method, **s.options} for s in self.stages]}

    def describe(self) -> str:
        """``name: stage -> stage -> ...``."""
        return f"{self.name}: " + " -> ".join(stage.describe() for stage in self.stages)


def make_stage(method: str, options: Mapping[str, object] | None = None) -> Stage:
    """A :class:`Stage` with ``options`` over the defaults, checked.

    Raises:
        TfcompressError: an unknown method or option, or a value of another type than its default.
    """
    if method not in STAGE_DEFAULTS:
        raise TfcompressError(f"unknown stage method {method!r}; use one of {', '.join(STAGE_DEFAULTS)}")
    defaults = STAGE_DEFAULTS[method]
    merged = dict(defaults)
    for name, value in (options or {}).items():
        if name not in defaults:
            raise TfcompressError(
                f"stage {method!r} has no option {name!r}; its options are {', '.join(sorted(defaults))}"
            )
        merged[name] = _coerce(method, name, value, defaults[name])
    return Stage(method, merged)


def _coerce(method: str, name: str, value, default):
    """``value`` as the type of ``default`` (ints may stand for floats; strings are parsed for --set)."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # e.g. pq block_size = 9
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TfcompressError(f"option {method}.{name} must be a {kind.__name__} (like {default!r}), got {value!r}")
    if (method, name) == ("binary", "attention") and value not in ("auto", "none"):
        raise TfcompressError(f"option binary.attention must be auto or none, got {value!r}")
    if (method, name) == ("binary", "width") and value != "auto" and not (value.isdigit() and int(value) > 0):
        raise TfcompressError(f"option binary.width must be auto or a channel count, got {value!r}")
    if method in AUTO_LEARNING_RATE and name == "learning_rate":
        text = str(value)
        with contextlib.suppress(ValueError):
            if text == "auto" or float(text) > 0:
                return text if text == "auto" else str(float(text))
        raise TfcompressError(f"option {method}.learning_rate must be auto or a positive number, got {value!r}")
    choices = CHOICES.get((method, name))
    if choices and value not in choices and not (name == "block_size" and value.isdigit() and int(value) > 0):
        extra = " or a block size" if name == "block_size" else ""
        raise TfcompressError(f"option {method}.{name} must be one of {', '.join(choices)}{extra}, got {value!r}")
    if name == "batchnorm" and value not in BATCHNORM_MODES:
        raise TfcompressError(f"option {method}.batchnorm must be one of {', '.join(BATCHNORM_MODES)}, got {value!r}")
    if kind in (int, float) and value < 0:
        raise TfcompressError(f"option {method}.{name} must be >= 0, got {value!r}")
    return value


def check_order(recipe: Recipe) -> Recipe:
    """Refuse orders that cannot work; return ``recipe``.

    Raises:
        TfcompressError: no stage, ``int8`` not last, or ``int8`` after a custom-op stage.
    """
    methods = [stage.method for stage in recipe.stages]
    if not methods:
        raise TfcompressError(f"recipe {recipe.name!r} has no stage")
    if "int8" in methods[:-1]:
        raise TfcompressError(f"recipe {recipe.name!r}: int8 is a conversion setting and must be the last stage")
    if recipe.int8:
        blocking = [m for m in methods if m in CUSTOM_OP_STAGES]
        if blocking:
            raise TfcompressError(
                f"recipe {recipe.name!r}: int8 cannot follow {', '.join(blocking)} "
                "(their layers become tfcompress custom ops, which the int8 converter cannot quantize); "
                "int8 composes with slim, lowrank and prune"
            )
    if "binary" in methods and len(methods) > 1:
        raise TfcompressError(
            f"recipe {recipe.name!r}: binary trains a new binary student from the model; it is a recipe of its own"
        )
    if methods.count("share") and methods.index("share") != len(methods) - 1 - recipe.int8:
        raise TfcompressError(f"recipe {recipe.name!r}: share must be the last stage (it makes custom-op layers)")
    if methods.count("pq") and methods.index("pq") != len(methods) - 1:
        raise TfcompressError(f"recipe {recipe.name!r}: pq must be the last stage (it makes custom-op layers)")
    return recipe


def builtin_recipe(name: str) -> Recipe:
    """A built-in recipe or a ``+`` composition of built-in recipes (``slim+dc``).

    Raises:
        TfcompressError: an unknown part, or a composition that cannot work (see :func:`check_order`).
    """
    methods: list[str] = []
    for part in name.split("+"):
        if part not in BUILTIN_RECIPES:
            raise TfcompressError(
                f"unknown recipe {part!r}; built-in recipes: {', '.join(BUILTIN_RECIPES)} "
                "(compose them with +, e.g. slim+dc), or a .toml file"
            )
        methods += [m for m in BUILTIN_RECIPES[part] if m not in methods]
    return check_order(Recipe(name, tuple(make_stage(m) for m in methods)))


def recipe_from_toml(path: str | os.PathLike) -> Recipe:
    """The recipe a TOML file describes (see the module docstring).

    Raises:
        TfcompressError: a missing or unparsable file, or a bad stage (see :func:`make_stage`).
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise TfcompressError(f"recipe file {path} does not exist")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise TfcompressError(f"recipe file {path} is not valid TOML: {error}") from error
    stages = document.get("stage")
    if not isinstance(stages, list) or not stages:
        raise TfcompressError(f"recipe file {path} lists no [[stage]] table")
    parsed = []
    for number, table in enumerate(stages, 1):
        options = dict(table)
        method = options.pop("method", None)
        if not isinstance(method, str):
            raise TfcompressError(f'recipe file {path}: stage {number} has no method = "..."')
        parsed.append(make_stage(method, options))
    return check_order(Recipe(str(document.get("name", path.stem)), tuple(parsed)))


def load_recipe(spec: str) -> Recipe:
    """A recipe from a built-in name, a ``+`` composition or a ``.toml`` path."""
    if spec.endswith(".toml"):
        return recipe_from_toml(spec)
    return builtin_recipe(spec)


def with_overrides(recipe: Recipe, overrides: Sequence[str] = (), epochs: int | None = None) -> Recipe:
    """``recipe`` with ``METHOD.OPTION=VALUE`` overrides and, when given, every stage's ``epochs``.

    Raises:
        TfcompressError: a malformed override or one naming no stage of the recipe.
    """
    changes: dict[str, dict[str, object]] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        method, dot, option = key.partition(".")
        if not sep or not dot or not option:
            raise TfcompressError(f"--set takes METHOD.OPTION=VALUE, like prune.sparsity=0.9; got {override!r}")
        if method not in {stage.method for stage in recipe.stages}:
            raise TfcompressError(f"--set {override!r}: recipe {recipe.name!r} has no {method!r} stage")
        changes.setdefault(method, {})[option] = value
    stages = []
    for stage in recipe.stages:
        options = {**stage.options, **changes.get(stage.method, {})}
        if epochs is not None and stage.method in TRAINING_STAGES:
            options["epochs"] = epochs
        stages.append(make_stage(stage.method, options))
    return check_order(Recipe(recipe.name, tuple(stages)))
