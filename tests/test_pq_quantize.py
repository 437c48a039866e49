"""The bottom-up PQ driver: quality against plain k-means, no mutation, errors, MirroredStrategy, CLI."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.cli import main
from tfcompress.distribute import get_strategy
from tfcompress.errors import TfcompressError, UnsupportedLayerError
from tfcompress.pq import PQConv2D, PQDense, ProductQuantizer, quantize
from tfcompress.pq.finetune import finetune_codebooks
from tfcompress.skipped import skipped_layers

SIZE = 16


def tiny_model(seed: int = 0, size: int = SIZE, depthwise: bool = False) -> keras.Model:
    """A small conv net with BN and a dense head whose logits are spread out (so KL is informative)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(momentum=0.5, name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    if depthwise:
        x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv3x3")(x)
    x = keras.layers.BatchNormalization(momentum=0.5, name="conv3x3_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(16, 1, name="conv1x1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0), name="head")(x)
    model = keras.Model(inputs, outputs)
    # BN statistics of the data (as in a trained model), not the initial 0 / 1.
    for _ in range(8):
        model(images(32, seed=seed + 100, size=size), training=True)
    return model


def images(count: int = 48, seed: int = 1, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (count, 1, 1, 3))
    return np.clip(base + rng.normal(0, 40, (count, size, size, 3)), 0, 255).astype(np.float32)


def output_error(student: keras.Model, teacher: keras.Model, x: np.ndarray) -> float:
    """Mean KL(teacher || student) of the softmax outputs: what the distillation minimises."""
    p = tf.nn.softmax(teacher.predict(x, verbose=0)).numpy()
    log_q = tf.nn.log_softmax(student.predict(x, verbose=0)).numpy()
    return float(np.mean(np.sum(p * (np.log(np.maximum(p, 1e-12)) - log_q), axis=1)))


def test_quantize_beats_plain_kmeans_and_leaves_the_input_alone():
    model = tiny_model()
    x = images()
    before = [w.copy() for w in model.get_weights()]
    options = {"n_centroids": 8, "n_centroids_dense": 8, "verbose": 0}
    plain = quantize(model, x, activation_aware=False, layer_steps=0, global_steps=0, **options)
    ours = quantize(model, x, layer_steps=30, global_steps=60, learning_rate=3e-3, **options)
    assert output_error(ours, model, x) < 0.7 * output_error(plain, model, x)
    # The input model is untouched: same weights, same layer types, still trainable.
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert [type(layer).__name__ for layer in model.layers].count("PQConv2D") == 0
    assert model.trainable and all(v.trainable for v in model.trainable_weights)
    # First conv and BN stay float; the others are PQ layers with the paper's block sizes.
    assert type(ours.get_layer("stem")) is keras.layers.Conv2D
    assert isinstance(ours.get_layer("conv3x3"), PQConv2D) and ours.get_layer("conv3x3").block_size == 9
    assert isinstance(ours.get_layer("conv1x1"), PQConv2D) and ours.get_layer("conv1x1").block_size == 4
    assert isinstance(ours.get_layer("head"), PQDense)
    # The returned model is trainable again (codebooks), codes stay fixed.
    names = {v.path for v in ours.trainable_weights}
    assert "conv3x3/codebook" in names and "conv3x3/codes" not in names


def test_activation_aware_em_lowers_the_weighted_objective():
    model, x = tiny_model(), images()
    common = {"n_centroids": 8, "n_centroids_dense": 8, "verbose": 0, "layer_steps": 0, "global_steps": 0}
    aware = ProductQuantizer(model, x, **common)
    aware.run()
    student = quantize(model, x, activation_aware=False, **common)
    # Evaluate plain k-means codes under the same G: the weighted objective must be higher.
    from tfcompress.pq.em import damped_gram, weighted_objective
    from tfcompress.pq.layout import kernel_to_subvectors

    for record in aware.records:
        if record.kind != "conv":
            continue
        layer = student.get_layer(record.name)
        float_layer = model.get_layer(record.name)
        gram = aware._gram(model, float_layer, record.block_size)  # inputs of the float model
        weights = kernel_to_subvectors(float_layer.kernel.numpy(), record.block_size).reshape(-1, record.block_size)
        plain = weighted_objective(weights, layer.codebook.numpy(), layer.codes.numpy().ravel(), damped_gram(gram))
        assert record.objective < plain


def test_bad_inputs_give_clear_errors():
    model = tiny_model()
    with pytest.raises(TfcompressError, match=r"calibration data has shape \(4, 8, 8, 3\).*\(N, 16, 16, 3\)"):
        quantize(model, np.zeros((4, 8, 8, 3)), verbose=0)
    with pytest.raises(TfcompressError, match=r"layer 'conv3x3': block size 5 does not divide"):
        quantize(model, images(8), block_sizes=5, verbose=0)
    with pytest.raises(UnsupportedLayerError, match=r"'stem_bn' \(BatchNormalization\) cannot be product-quantized"):
        quantize(model, images(8), layers=["stem_bn"], verbose=0)
    with pytest.raises(TfcompressError, match=r"no layer named 'nope'"):
        quantize(model, images(8), skip=["nope"], verbose=0)
    with pytest.raises(TfcompressError, match="unknown block size preset 'huge'"):
        quantize(model, images(8), block_sizes="huge", verbose=0)


def test_unsupported_layers_are_named_and_left_float():
    model = tiny_model(depthwise=True)
    with pytest.warns(
        UserWarning, match=r"left float: .*Conv2D: the first layer stays float \(1 layer: stem\).*DepthwiseConv2D"
    ):
        student = quantize(model, images(16), n_centroids=8, layer_steps=0, global_steps=0, verbose=0)
    assert [record.layer for record in skipped_layers(student)] == ["stem", "dw"]
    assert type(student.get_layer("dw")) is keras.layers.DepthwiseConv2D
    np.testing.assert_array_equal(student.get_layer("dw").get_weights()[0], model.get_layer("dw").get_weights()[0])


def test_dataset_calibration_and_first_layer_on_request():
    model, x = tiny_model(), images(16)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(5)
    student = quantize(
        model, dataset, n_centroids=4, quantize_first_layer=True, layer_steps=0, global_steps=0, verbose=0
    )
    assert isinstance(student.get_layer("stem"), PQConv2D)


def test_finetune_under_mirrored_strategy():
    strategy = get_strategy(2)
    assert strategy.num_replicas_in_sync == 2
    x = images(32)
    with strategy.scope():
        model = tiny_model()
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
        student = quantize(model, x, n_centroids=4, n_centroids_dense=4, layer_steps=0, global_steps=0, verbose=0)
        before_error = output_error(student, model, x)
        codes_before = student.get_layer("conv3x3").codes.numpy().copy()
        stem_before = student.get_layer("stem").kernel.numpy().copy()
        bn = student.get_layer("conv3x3_bn")
        bn_before = [bn.gamma.numpy().copy(), bn.moving_mean.numpy().copy()]
        codebooks = [student.get_layer(n).codebook for n in ("conv3x3", "conv1x1", "head")]
        losses = finetune_codebooks(
            student, teacher, x, codebooks, steps=40, learning_rate=1e-2, batch_size=16, update_batchnorm=True
        )
    assert losses and np.isfinite(losses).all()
    assert output_error(student, model, x) < before_error
    np.testing.assert_array_equal(student.get_layer("conv3x3").codes.numpy(), codes_before)
    np.testing.assert_array_equal(student.get_layer("stem").kernel.numpy(), stem_before)
    # BN statistics follow the student, gamma stays fixed.
    np.testing.assert_array_equal(bn.gamma.numpy(), bn_before[0])
    assert not np.allclose(bn.moving_mean.numpy(), bn_before[1])


def test_cli_pq(tmp_path, image_folder, capsys):
    model = tiny_model(size=24)
    source = tmp_path / "tiny.keras"
    model.save(source)
    output = tmp_path / "tiny_pq.keras"
    argv = ["pq", str(source), "--data", str(image_folder), "-o", str(output), "--centroids", "4"]
    argv += ["--centroids-dense", "4", "--layer-steps", "0", "--global-steps", "2", "--batch-size", "4"]
    assert main(argv) == 0
    loaded = keras.models.load_model(output)
    assert isinstance(loaded.get_layer("conv3x3"), PQConv2D)
    assert "| **total** |" in capsys.readouterr().out
    assert main(argv) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    bad = ["pq", str(source), "--data", str(image_folder), "-o", str(tmp_path / "x.keras"), "--block-size", "5"]
    assert main(bad) == 2
    assert "block size 5 does not divide" in capsys.readouterr().err


def test_checkpoints_resume_after_the_last_saved_layer(tmp_path):
    model, x = tiny_model(), images(16)
    options = {"n_centroids": 4, "n_centroids_dense": 4, "layer_steps": 0, "global_steps": 0, "verbose": 0}
    first = ProductQuantizer(model, x, checkpoint_dir=tmp_path, **options)
    student = first.run()
    assert (tmp_path / "student.keras").is_file()
    # A second run finds every layer done: same records (timings included), same codes.
    second = ProductQuantizer(model, x, checkpoint_dir=tmp_path, seed=99, **options)
    resumed = second.run()
    assert [r.em_seconds for r in second.records] == [r.em_seconds for r in first.records]
    for name in ("conv3x3", "conv1x1", "head"):
        np.testing.assert_array_equal(resumed.get_layer(name).codes.numpy(), student.get_layer(name).codes.numpy())
