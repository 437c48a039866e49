"""BatchNorm statistics: the learned-here test, freezing, and ``batchnorm = "auto"`` in compress stages."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.batchnorm import MISMATCH_LIMIT, batchnorm_layers, freeze_statistics, statistics_mismatch
from tfcompress.compress.pipeline import resolve_batchnorm
from tfcompress.compress.recipes import make_stage
from tfcompress.errors import TfcompressError


def small_net() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.0, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.0, name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def learn_statistics(model: keras.Model, images: np.ndarray) -> None:
    """One full-batch training step at learning rate 0 with momentum 0: moving statistics = the data's."""
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(images, np.zeros((len(images), 3)), batch_size=len(images), epochs=1, verbose=0)


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 255, (32, 12, 12, 3)).astype("float32")


def test_statistics_learned_on_the_data_match_and_others_do_not(images):
    keras.utils.set_random_seed(0)
    model = small_net()
    assert statistics_mismatch(model, images) > MISMATCH_LIMIT  # initial statistics (0, 1) against 0..255 pixels
    learn_statistics(model, images)
    assert statistics_mismatch(model, images) < 0.01
    assert statistics_mismatch(model, images, batch_size=5) < 0.01  # uneven batches accumulate the same
    other = images * 0.2  # other data (e.g. ImageNet's statistics against flowers)
    assert statistics_mismatch(model, other) > MISMATCH_LIMIT


def test_frozen_statistics_and_affine_stay_while_the_convolutions_train(images):
    keras.utils.set_random_seed(0)
    model = small_net()
    learn_statistics(model, images)
    freeze_statistics(model)
    before = {v.path: np.array(v.numpy()) for layer in batchnorm_layers(model) for v in layer.weights}
    kernel = np.array(model.get_layer("conv1").kernel.numpy())
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(images * 0.5, np.ones((len(images), 3)), batch_size=8, epochs=1, verbose=0)
    after = {v.path: np.array(v.numpy()) for layer in batchnorm_layers(model) for v in layer.weights}
    assert before.keys() == after.keys() and len(before) == 8
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert not np.allclose(model.get_layer("conv1").kernel.numpy(), kernel)


def test_auto_resolves_by_the_input_models_statistics(tmp_path):
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", size=12)
    keras.utils.set_random_seed(0)
    fresh = small_net()  # statistics (0, 1): not learned on these images
    stage, note = resolve_batchnorm(make_stage("pq"), fresh, data, None)
    assert stage.option("batchnorm") == "freeze" and "frozen" in note
    stage, note = resolve_batchnorm(make_stage("prune"), fresh, data, None)  # it retrains every weight
    assert stage.option("batchnorm") == "update" and note == ""
    from tfcompress.data import load_split

    trained = small_net()
    learn_statistics(trained, load_split(data, "train", 12).images)
    stage, note = resolve_batchnorm(make_stage("share"), trained, data, None)
    assert stage.option("batchnorm") == "update" and "updated" in note
    stage, note = resolve_batchnorm(make_stage("pq", {"batchnorm": "update"}), fresh, data, None)
    assert stage.option("batchnorm") == "update" and "batchnorm=update" in note


def test_a_bad_batchnorm_option_is_refused():
    with pytest.raises(TfcompressError, match=r"prune\.batchnorm must be one of auto, update, freeze"):
        make_stage("prune", {"batchnorm": "frozen"})
