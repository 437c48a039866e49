"""Trained quantization (Deep Compression stage 2): cluster-tied gradients keep kernels shared."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.errors import UnsupportedLayerError
from tfcompress.pruning import ConstantSparsity, prune, strip
from tfcompress.pruning.finetune import FinetuneConfig
from tfcompress.pruning.layers import codebook_and_indices, deep_compress, shared_layers
from tfcompress.pruning.trained_quantization import finetune_centroids, tie_to_clusters, tied_kernel


def test_tied_kernel_is_the_kernel_forward_and_averages_gradients_per_cluster():
    ids = np.array([[0, 1, 1], [2, 2, 2], [1, 0, 3]], np.int32)
    kernel = tf.Variable(np.array([[0.0, 0.5, 0.5], [-1.0, -1.0, -1.0], [0.5, 0.0, 2.0]], np.float32))
    upstream = tf.constant(np.arange(9, dtype=np.float32).reshape(3, 3) + 1)
    with tf.GradientTape() as tape:
        tied = tied_kernel(kernel, ids, clusters=4)
        loss = tf.reduce_sum(tied * upstream)
    np.testing.assert_array_equal(tied.numpy(), kernel.numpy())
    grad = tape.gradient(loss, kernel).numpy()
    g = upstream.numpy()
    expected = np.zeros((3, 3), np.float32)
    for k in (1, 2, 3):
        expected[ids == k] = g[ids == k].mean()
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    assert np.all(grad[ids == 0] == 0)


def _tiny_shared_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1)(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(10, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    model = keras.Model(inputs, outputs)
    pruned = strip(prune(model, ConstantSparsity(0.6, frequency=1)))
    return deep_compress(pruned, conv_bits=3, dense_bits=3)


@pytest.mark.parametrize("devices", [None, 2])
def test_finetuned_centroids_move_but_clusters_and_zeros_stay(image_folder, devices):
    shared = _tiny_shared_model()
    before = {layer.name: keras.ops.convert_to_numpy(layer.kernel).copy() for layer in shared_layers(shared)}
    config = FinetuneConfig(epochs=2, batch_size=4, learning_rate=0.2)
    tuned = finetune_centroids(shared, image_folder, config, devices=devices, verbose=0)
    moved = 0
    for layer in shared_layers(tuned):
        old, new = before[layer.name], keras.ops.convert_to_numpy(layer.kernel)
        np.testing.assert_array_equal(new == 0, old == 0)  # pruned weights stay pruned
        _, old_ids = codebook_and_indices(old, layer.weight_bits)
        for k in np.unique(old_ids[old_ids != 0]):
            assert len(np.unique(new[old_ids == k])) == 1, f"{layer.name}: cluster {k} no longer shares one value"
        assert len(np.unique(new[new != 0])) <= 2**layer.weight_bits - 1
        moved += int(not np.array_equal(new, old))
        assert layer.cluster_ids is None  # untied after training
    assert moved == len(before)
    for layer in shared_layers(shared):  # the input model is not mutated
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), before[layer.name])


def test_tying_a_model_without_shared_layers_names_the_fix():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match="deep_compress first"):
        tie_to_clusters(model)
