"""The no-harm probe that picks a stage's optimizer and learning rate from the model it is given."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import make_image_folder

from tfcompress.compress.finetune_choice import MIN_AGREEMENT, choose_finetune
from tfcompress.compress.recipes import builtin_recipe, with_overrides
from tfcompress.errors import TfcompressError


def brightness_classifier() -> keras.Model:
    """Class ``k`` for images of mean brightness near ``60 k``: logits ``k * mean - 30 k^2`` (distinct predictions)."""
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(3, 1, name="mix")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    model.get_layer("mix").set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3), np.zeros(3, "float32")])
    ks = np.arange(3, dtype="float32")
    model.get_layer("logits").set_weights([np.tile(ks / 3, (3, 1)), -30 * ks**2])
    return model


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    data = make_image_folder(tmp_path_factory.mktemp("choice") / "data", per_class=12)
    return brightness_classifier(), data


def test_the_first_candidate_that_keeps_the_predictions_is_chosen_after_a_harmful_one(setting):
    model, data = setting
    before = [w.copy() for w in model.get_weights()]
    choice = choose_finetune(model, model, data, candidates=(("sgd", 1000.0), ("sgd", 1e-6)), steps=3)
    (_, _, harmful), (_, _, harmless) = choice.tried
    assert harmful < MIN_AGREEMENT <= harmless == 1.0
    assert (choice.optimizer, choice.learning_rate, choice.passed) == ("sgd", 1e-6, True)
    assert "sgd 1000: " in choice.describe() and "the largest step that kept" in choice.describe()
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # the model is not touched


def test_the_choice_is_deterministic_and_one_of_the_candidates(setting):
    model, data = setting
    candidates = (("sgd", 1000.0), ("adam", 50.0))
    first = choose_finetune(model, model, data, candidates=candidates, steps=3, seed=1)
    again = choose_finetune(model, model, data, candidates=candidates, steps=3, seed=1)
    assert first.tried == again.tried
    assert not first.passed and (first.optimizer, first.learning_rate) == candidates[-1]  # none kept: the smallest
    assert "no candidate kept 90%" in first.describe()


def test_the_recipe_takes_auto_or_a_positive_learning_rate():
    recipe = with_overrides(builtin_recipe("pruned"), ["prune.learning_rate=auto", "prune.optimizer=auto"])
    assert recipe.option("prune", "learning_rate") == "auto" and recipe.option("prune", "optimizer") == "auto"
    assert (
        with_overrides(builtin_recipe("slim"), ["slim.learning_rate=1e-3"]).option("slim", "learning_rate") == "0.001"
    )
    with pytest.raises(TfcompressError, match=r"prune\.learning_rate must be auto or a positive number"):
        with_overrides(builtin_recipe("pruned"), ["prune.learning_rate=fast"])
    with pytest.raises(TfcompressError, match=r"lowrank\.optimizer must be one of auto, sgd, adam"):
        with_overrides(builtin_recipe("lowrank"), ["lowrank.optimizer=rmsprop"])
