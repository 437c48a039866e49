"""Nested models (a backbone used as one layer): inlined into one graph, then compressed like any model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.nested import inline_submodels, submodels


def _backbone(name: str = "backbone") -> keras.Model:
    """A small separable backbone: conv-BN-ReLU, depthwise, 1x1 conv-BN-ReLU (names clash with the head)."""
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(12, 1, use_bias=False, name="pointwise")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn_2")(x))
    return keras.Model(inputs, x, name=name)


def _transfer_model(seed: int = 0) -> keras.Model:
    """The Keras transfer-learning form: rescaling, a backbone as one layer, pooling, a head (a name clashes)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = _backbone()(x)
    x = keras.layers.Conv2D(16, 1, name="conv")(x)  # "conv" is also a backbone layer's name
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="transfer")


def _images(count: int = 4) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, 24, 24, 3)).astype("float32")


def _randomize_batchnorm(model: keras.Model) -> None:
    rng = np.random.default_rng(1)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])


def test_a_nested_backbone_is_inlined_into_one_graph_that_computes_the_same():
    model = _transfer_model()
    _randomize_batchnorm(model)
    before = [w.copy() for w in model.get_weights()]
    flat = inline_submodels(model)
    assert not submodels(flat) and flat.name == "transfer"
    names = [layer.name for layer in flat.layers]
    assert {"depthwise", "pointwise", "bn", "bn_2", "logits"} <= set(names)
    assert "conv" in names and "backbone_conv" in names  # the outer layer keeps its name, the inner is prefixed
    assert len(names) == len(set(names))
    np.testing.assert_allclose(flat.predict(_images(), verbose=0), model.predict(_images(), verbose=0), atol=1e-5)
    assert len(model.layers) == 6  # the given model is untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert flat.get_layer("backbone_conv").kernel is not model.layers[2].get_layer("conv").kernel  # copies


def test_a_keras_applications_backbone_in_a_sequential_model_is_inlined():
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    model = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(4)])  # fmt: skip
    flat = inline_submodels(model)
    assert len(flat.layers) == len(base.layers) + 2  # the inner Input replaced by the outer one
    assert sum(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in flat.layers) == 17
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(flat.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_a_model_without_submodels_is_returned_as_it_is():
    model = _backbone()
    assert inline_submodels(model) is model


def test_a_submodel_called_twice_is_refused_in_one_line():
    backbone = _backbone()
    left, right = keras.Input((24, 24, 3)), keras.Input((24, 24, 3))
    merged = keras.layers.Concatenate()([backbone(left), backbone(right)])
    siamese = keras.Model([left, right], merged, name="siamese")
    with pytest.raises(TfcompressError, match="calls sub-model 'backbone' 2 times"):
        inline_submodels(siamese)


def test_a_subclassed_submodel_is_refused_with_the_reason():
    class Block(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    inputs = keras.Input((24, 24, 3))
    model = keras.Model(inputs, Block(name="block")(inputs))
    with pytest.raises(TfcompressError, match="sub-model 'block' is subclassed"):
        inline_submodels(model)


def test_every_method_reaches_the_layers_of_a_nested_backbone():
    from tfcompress.lowrank import factorize
    from tfcompress.pq import quantize
    from tfcompress.pruning.layers import deep_compress, shared_layers
    from tfcompress.pruning.slim import slim
    from tfcompress.skipped import skipped_layers

    model = _transfer_model()
    _randomize_batchnorm(model)
    images = _images(16)
    pq = quantize(model, images, block_sizes="mobile", n_centroids=4, em_iterations=2, layer_steps=0,
                  global_steps=0, verbose=0)  # fmt: skip
    pq_layers = {layer.name for layer in pq.layers if type(layer).__name__.startswith("PQ")}
    assert {"pointwise", "conv", "logits"} <= pq_layers
    shared = deep_compress(model, conv_bits=4, dense_bits=4)
    assert {"backbone_conv", "pointwise", "conv", "logits"} <= {layer.name for layer in shared_layers(shared)}
    assert [record.layer for record in skipped_layers(shared)] == ["depthwise"]
    thin = slim(model, 0.3)
    assert thin.count_params() < model.count_params() and not submodels(thin)
    factored = factorize(model, "svd", rank=2, layers=["pointwise"])
    assert factored.count_params() < model.count_params()
    assert thin.predict(images[:2], verbose=0).shape == factored.predict(images[:2], verbose=0).shape == (2, 3)


def test_compress_inlines_the_backbone_and_reports_what_sharing_left(tmp_path):
    from conftest import make_image_folder

    from tfcompress.cli import main
    from tfcompress.evaluate import TFLiteClassifier

    data = make_image_folder(tmp_path / "data")
    _transfer_model().save(tmp_path / "in.keras")
    output = tmp_path / "dc.tflite"
    args = ["compress", str(tmp_path / "in.keras"), "--data", str(data), "-o", str(output), "--recipe", "dc",
            "--epochs", "1", "--latency-rounds", "1", "--json", str(tmp_path / "dc.json")]  # fmt: skip
    assert main(args) == 0
    result = json.loads((tmp_path / "dc.json").read_text())
    share = next(stage for stage in result["stages"] if stage["method"] == "share")
    assert share["skipped"] == ["depthwise: DepthwiseConv2D: only Conv2D (groups=1) and Dense are shared"]
    assert "TfcSparseDecode" in (tmp_path / "dc.md").read_text()
    assert TFLiteClassifier(output).predict(_images(1)).shape == (1, 3)


def test_a_frozen_backbone_is_made_trainable_for_the_finetunes_but_its_batchnorm_is_left_to_the_stage():
    from tfcompress.compress.pipeline import unfreeze

    model = _transfer_model()
    model.layers[2].trainable = False  # base.trainable = False, as in the Keras transfer-learning guide
    flat = inline_submodels(model)
    assert not flat.get_layer("pointwise").trainable
    assert sorted(unfreeze(flat)) == ["backbone_conv", "depthwise", "pointwise"]
    assert all(flat.get_layer(name).trainable for name in ("backbone_conv", "depthwise", "pointwise", "logits"))
    assert not flat.get_layer("bn").trainable and not flat.get_layer("bn_2").trainable
    assert unfreeze(flat) == []
