"""Each method leaves the layers it cannot handle as they were, says why, and compresses the rest.

Tiny hand-built models reproduce what failed on ``keras.applications`` models: a 1x1 conv
with 6 input channels (EfficientNet's squeeze-excitation expand), a layer that slimming
would empty (EfficientNet's ``block1a_project_conv``), squeeze-excitation with hard-swish
(MobileNetV3), DenseNet's BatchNorm over concatenations, depthwise convs, an RGB stem under
N:M pruning.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfcompress.lowrank import factorize
from tfcompress.pq import PQConv2D, PQDense, ProductQuantizer
from tfcompress.pruning import ConstantSparsity, deep_compress, prune, strip
from tfcompress.pruning.slim import slim
from tfcompress.skipped import SkippedLayer, skipped_layers

SIZE = 8


def images(count: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, SIZE, SIZE, 3)).astype(np.float32)


def reasons(records: list[SkippedLayer]) -> dict[str, str]:
    return {record.layer: record.reason for record in records}


def pq_model() -> keras.Model:
    """stem -> 1x1 to 6 -> 1x1 from 6 (d=4 does not divide) -> 1x1 to 7 -> 1x1 from 7 (prime) -> depthwise -> head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.Conv2D(6, 1, activation="relu", name="squeeze")(x)
    x = keras.layers.Conv2D(8, 1, name="se_expand")(x)  # C_in*kh*kw = 6
    x = keras.layers.Conv2D(7, 1, activation="relu", name="to_seven")(x)
    x = keras.layers.Conv2D(8, 1, name="prime")(x)  # C_in*kh*kw = 7: no block size from 2 to 4 divides it
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))  # 8 / 4 * 2 = 4 subvectors


def test_pq_fits_the_block_size_or_skips_the_layer_with_its_reason():
    model, x = pq_model(), images()
    quantizer = ProductQuantizer(model, x, n_centroids=4, n_centroids_dense=4, layer_steps=0, global_steps=0, verbose=0)
    with pytest.warns(UserWarning, match=r"left float: .*Conv2D: no block size from 2 .* = 7 \(1 layer: prime\)"):
        student = quantizer.run()
    assert {r.name: r.block_size for r in quantizer.records} == {"squeeze": 4, "se_expand": 3, "to_seven": 4}
    assert isinstance(student.get_layer("se_expand"), PQConv2D)
    why = reasons(skipped_layers(student))
    assert quantizer.skipped == skipped_layers(student)
    assert why == {
        "stem": "Conv2D: the first layer stays float",
        "prime": "Conv2D: no block size from 2 to the preset's divides C_in*kh*kw = 7",
        "dw": "DepthwiseConv2D: only Conv2D (groups=1, channels last) and Dense are product-quantized",
        "head": "Dense: only 4 subvectors of 4, too few to quantize",
    }
    assert not isinstance(student.get_layer("head"), PQDense)
    np.testing.assert_array_equal(student.get_layer("prime").kernel.numpy(), model.get_layer("prime").kernel.numpy())
    assert np.isfinite(keras.ops.convert_to_numpy(student(x))).all()


def _set_norms(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2, n)]
            )


def _zero(model: keras.Model, name: str, channels: list[int]) -> None:
    gamma, beta, mean, var = model.get_layer(name).get_weights()
    gamma[channels] = beta[channels] = 0.0
    model.get_layer(name).set_weights([gamma, beta, mean, var])


def test_slim_never_empties_a_layer_and_reports_the_capped_share():
    """EfficientNet's block1a: a 2-channel projection whose |gamma| are the smallest of the model."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.BatchNormalization(name="stem_bn")(keras.layers.Conv2D(8, 3, name="stem_conv")(inputs))
    x = keras.layers.BatchNormalization(name="dw_bn")(keras.layers.DepthwiseConv2D(3, name="dw")(x))
    x = keras.layers.BatchNormalization(name="project_bn")(keras.layers.Conv2D(2, 1, name="project_conv")(x))
    x = keras.layers.BatchNormalization(name="head_bn")(keras.layers.Conv2D(8, 1, name="head_conv")(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    _set_norms(model)
    _, *rest = model.get_layer("project_bn").get_weights()
    model.get_layer("project_bn").set_weights([np.array([0.01, 0.02]), *rest])
    with pytest.warns(UserWarning, match=r"slimming capped: Conv2D: share capped.*\(1 layer: project_conv\)"):
        thin, report = slim(model, 0.3, return_report=True)
    assert thin.get_layer("project_conv").filters == 1
    assert report.removed_channels == 7  # 0.3 of 26: one projection channel, then six from the other layers
    why = reasons(report.skipped)
    assert why["project_conv"] == "Conv2D: share capped: the threshold would remove 2 of its 2 channels, 1 kept"
    assert report.skipped == skipped_layers(thin)
    assert np.isfinite(keras.ops.convert_to_numpy(thin(images()))).all()
    kept_half = slim(model, 0.3, min_kept=0.5)
    assert all(kept_half.get_layer(n).filters >= model.get_layer(n).filters / 2 for n in ("stem_conv", "head_conv"))


def test_slim_squeeze_excitation_with_hard_swish_removes_channels_exactly():
    """MobileNetV3 / EfficientNet: hard-swish, depthwise, SE (pool, reduce, expand, multiply), projection."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(keras.layers.Conv2D(8, 3, padding="same", name="conv1")(x))
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Activation("hard_swish")(keras.layers.BatchNormalization(name="dw_bn")(x))
    se = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(se)
    se = keras.layers.Conv2D(8, 1, activation="hard_sigmoid", name="se_expand")(se)
    x = keras.layers.Multiply()([x, se])
    x = keras.layers.BatchNormalization(name="project_bn")(keras.layers.Conv2D(6, 1, name="project")(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    _set_norms(model)
    for name in ("bn1", "dw_bn"):  # one group through the depthwise conv and the SE multiply
        _zero(model, name, [1, 4])
    _zero(model, "project_bn", [2])
    thin, report = slim(model, 5 / 22, return_report=True)
    assert report.removed_channels == 5
    assert thin.get_layer("dw").kernel.shape[2] == 6 and thin.get_layer("se_expand").filters == 6
    assert thin.get_layer("se_reduce").kernel.shape[2] == 6 and thin.get_layer("project").filters == 5
    x = images()
    np.testing.assert_allclose(thin(x), model(x), rtol=1e-4, atol=1e-4)
    assert reasons(report.skipped) == {"se_reduce": "Conv2D: no BatchNormalization ranks its channels"}


def test_slim_densenet_concatenations_remove_channels_exactly():
    """DenseNet: each layer's output is concatenated to its input and BatchNorm runs on the concatenation."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    for block in (1, 2):
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"b{block}_bn1")(x))
        y = keras.layers.Conv2D(8, 1, use_bias=False, name=f"b{block}_conv1")(y)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"b{block}_bn2")(y))
        y = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"b{block}_conv2")(y)
        x = keras.layers.Concatenate(name=f"b{block}_concat")([x, y])
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="final_bn")(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    _set_norms(model)
    # b1_conv2's channel 2 sits at 8 + 2 of every later concatenation: zero it in each BatchNorm that reads it.
    for name in ("b2_bn1", "final_bn"):
        _zero(model, name, [10])
    _zero(model, "b1_bn2", [0, 5])
    thin, report = slim(model, 4 / 60, return_report=True)
    assert report.removed_channels == 4  # b1_conv2's channel counts in two BatchNorms
    assert thin.get_layer("b1_conv2").filters == 3 and thin.get_layer("b1_conv1").filters == 6
    assert thin.get_layer("b2_conv1").kernel.shape[2] == 11 and thin.get_layer("final_bn").gamma.shape == (15,)
    x = images()
    np.testing.assert_allclose(thin(x), model(x), rtol=1e-4, atol=1e-4)


def depthwise_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv")(x)
    x = keras.layers.SeparableConv2D(8, 3, padding="same", name="separable")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(x)))


def test_low_rank_pruning_and_sharing_list_the_layers_they_leave():
    model = depthwise_model()
    small = factorize(model, "tucker2", rank=2)
    why = reasons(skipped_layers(small))
    assert why["dw"].startswith("DepthwiseConv2D: is a DepthwiseConv2D; only Dense and Conv2D")
    assert why["separable"].startswith("SeparableConv2D: ")
    assert "conv" not in why

    pruned = prune(model, ConstantSparsity(0.5), granularity=(2, 4))  # the RGB stem has 3 input channels
    why = reasons(skipped_layers(pruned))
    assert why == {
        "stem": "Conv2D: 2:4 pruning: M=4 does not divide its input dimension 3",
        "dw": "DepthwiseConv2D: depthwise kernels have no input dimension for N:M",
        "separable": "SeparableConv2D: not a supported kind (only Conv, Dense kernels)",
    }
    plain = strip(pruned)
    assert skipped_layers(plain) == skipped_layers(pruned)
    assert np.mean(plain.get_layer("conv").kernel.numpy() == 0) == pytest.approx(0.5)

    shared = deep_compress(plain, conv_bits=4, dense_bits=4)
    assert set(reasons(skipped_layers(shared))) == {"dw", "separable"}


def test_many_skipped_layers_are_grouped_by_reason_with_counts():
    from tfcompress.skipped import describe_skipped, grouped, split_message

    records = [SkippedLayer(f"dw{i}", "DepthwiseConv2D: only Conv2D and Dense") for i in range(16)]
    records.append(SkippedLayer("stem", "Conv2D: the first layer stays float"))
    line = describe_skipped(records, "left float: ")
    assert line == (
        "left float: DepthwiseConv2D: only Conv2D and Dense (16 layers: dw0, dw1, dw2 and 13 more); "
        "Conv2D: the first layer stays float (1 layer: stem)"
    )
    messages = [f"{r.layer}: {r.reason}" for r in records[:2]] + ["head (Dense: too small)"]
    assert grouped(map(split_message, messages)) == [
        "DepthwiseConv2D: only Conv2D and Dense (2 layers: dw0, dw1)",
        "Dense: too small (1 layer: head)",
    ]
