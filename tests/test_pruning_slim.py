"""Network Slimming: exact removal of zero-gamma channels, residual / concat coupling, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.models import build_model
from tfcompress.pruning.slim import add_gamma_penalty, bn_gammas, slim


def coupled_model(seed: int = 0) -> keras.Model:
    """conv1+bn1 -> residual (conv2+bn2 added to it) -> concat(conv3+bn3, conv4+bn4) -> dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    a = keras.layers.BatchNormalization(name="bn1")(a)
    a = keras.layers.ReLU(name="relu1")(a)
    b = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(a)
    b = keras.layers.BatchNormalization(name="bn2")(b)
    r = keras.layers.ReLU(name="relu2")(keras.layers.Add(name="add")([a, b]))
    c = keras.layers.BatchNormalization(name="bn3")(keras.layers.Conv2D(6, 1, name="conv3")(r))
    d = keras.layers.BatchNormalization(name="bn4")(keras.layers.Conv2D(5, 3, padding="same", name="conv4")(r))
    x = keras.layers.ReLU(name="relu3")(keras.layers.Concatenate(name="concat")([c, d]))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.5, n),
                    rng.normal(0, 0.2, n),
                    rng.uniform(0.5, 2.0, n),
                ]
            )
    return model


def _zero_channels(model: keras.Model, layer: str, channels: list[int]) -> None:
    bn = model.get_layer(layer)
    gamma, beta, mean, var = bn.get_weights()
    gamma[channels] = 0.0
    beta[channels] = 0.0
    bn.set_weights([gamma, beta, mean, var])


def test_removing_zero_gamma_channels_keeps_outputs_identical_with_coupling():
    model = coupled_model()
    # residual channels 1 and 5 are zero in BOTH bn1 and bn2 (coupled through the add)
    _zero_channels(model, "bn1", [1, 5])
    _zero_channels(model, "bn2", [1, 5])
    # residual channel 3 is zero in bn1 only: the add keeps it alive, so it must stay
    _zero_channels(model, "bn1", [3])
    _zero_channels(model, "bn3", [0, 2])  # concatenated branches
    _zero_channels(model, "bn4", [3])
    total = 8 + 8 + 6 + 5
    removed = 2 * 2 + 2 + 1
    thin, report = slim(model, removed / total, return_report=True)
    assert report.removed_channels == removed and report.total_channels == total
    assert report.layer_channels["conv1"] == (8, 6) and report.layer_channels["conv2"] == (8, 6)
    assert report.layer_channels["conv3"] == (6, 4) and report.layer_channels["conv4"] == (5, 4)
    assert thin.get_layer("conv3").kernel.shape == (1, 1, 6, 4)
    assert thin.get_layer("logits").kernel.shape == (8, 3)  # concat rows 0, 2 and 6+3 removed
    assert report.params_after < report.params_before == model.count_params()
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(thin(x), model(x), rtol=1e-5, atol=1e-5)
    # the input model is untouched
    assert model.get_layer("conv1").kernel.shape == (3, 3, 3, 8)


def test_residual_channels_are_removed_together_in_a_zoo_resnet():
    model = build_model("resnet8", num_classes=3, image_size=16, width=4)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, *rest = layer.get_weights()
            layer.set_weights([rng.uniform(0.1, 1.0, gamma.shape), *rest])
    thin = slim(model, 0.3)
    for stage in ("stage1_block1", "stage2_block1", "stage3_block1"):
        conv2 = thin.get_layer(f"{stage}_conv2").kernel.shape[-1]
        shortcut = thin.get_layer(f"{stage}_proj").kernel.shape[-1] if stage != "stage1_block1" else None
        if shortcut is not None:
            assert conv2 == shortcut
    assert thin.get_layer("stem_conv").kernel.shape[-1] == thin.get_layer("stage1_block1_conv2").kernel.shape[-1]
    assert thin.count_params() < model.count_params()
    assert thin(np.zeros((1, 16, 16, 3), np.float32)).shape == (1, 3)


def test_gamma_penalty_is_l1_on_every_batchnorm_scale():
    model = coupled_model()
    penalized = add_gamma_penalty(model, l1=1e-3)
    assert not model.losses
    x = np.zeros((1, 6, 6, 3), np.float32)
    penalized(x)
    expected = 1e-3 * bn_gammas(model).sum()
    assert float(sum(keras.ops.convert_to_numpy(v) for v in penalized.losses)) == pytest.approx(expected, rel=1e-5)


def test_slimming_errors():
    model = coupled_model()
    with pytest.warns(UserWarning, match="slimming capped"):  # 0.97 would empty layers: each keeps one channel
        thin = slim(model, 0.97)
    assert all(thin.get_layer(name).filters == 1 for name in ("conv1", "conv3", "conv4"))
    with pytest.raises(TfcompressError, match=r"min_kept must be in \[0, 1\)"):
        slim(model, 0.5, min_kept=1.0)
    with pytest.raises(TfcompressError, match=r"\[0, 1\)"):
        slim(model, 1.0)
    no_bn = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(UnsupportedLayerError, match="no BatchNormalization"):
        slim(no_bn, 0.5)
