"""Product quantization: block layout, PQ layers, activation-aware EM, size accounting."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.errors import TfcompressError
from tfcompress.pq import PQConv2D, PQDense, activation_aware_kmeans, size_report
from tfcompress.pq.activations import conv_input_gram, dense_input_gram
from tfcompress.pq.em import assign_codes, capped_centroids, damped_gram, weighted_objective
from tfcompress.pq.layout import decode, kernel_to_subvectors, subvectors_to_kernel


def _random_pq(layer, input_shape, seed=0):
    rng = np.random.default_rng(seed)
    if not layer.built:
        layer.build(input_shape)
    layer.codebook.assign(rng.standard_normal(layer.codebook.shape).astype(np.float32))
    layer.codes.assign(rng.integers(0, layer.n_centroids, layer.codes.shape).astype(np.int32))
    if layer.bias is not None:
        layer.bias.assign(rng.standard_normal(layer.bias.shape).astype(np.float32))
    return layer


# --- layout -----------------------------------------------------------------------------


def test_subvectors_follow_the_papers_blocks():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 4, 5))
    small = kernel_to_subvectors(kernel, 9)
    assert small.shape == (4, 5, 9)
    for b, j in itertools.product(range(4), range(5)):
        # d = 9 is exactly one input channel's 3x3 kernel of output j.
        np.testing.assert_array_equal(small[b, j], kernel[:, :, b, j].reshape(-1))
    large = kernel_to_subvectors(kernel, 18)
    np.testing.assert_array_equal(large[1, 2], np.concatenate([kernel[:, :, 2, 2].ravel(), kernel[:, :, 3, 2].ravel()]))
    dense = rng.standard_normal((12, 3))
    np.testing.assert_array_equal(kernel_to_subvectors(dense, 4)[2, 1], dense[8:12, 1])
    for array, d in ((kernel, 9), (kernel, 18), (kernel, 6), (dense, 4)):
        np.testing.assert_array_equal(subvectors_to_kernel(kernel_to_subvectors(array, d), array.shape), array)


# --- layers -----------------------------------------------------------------------------


@pytest.mark.parametrize("d", [9, 18])
def test_conv_decodes_exactly_and_convolves_like_conv2d(d):
    layer = _random_pq(PQConv2D(7, 3, block_size=d, n_centroids=16, strides=2, padding="same"), (None, 9, 11, 6))
    kernel = decode(layer.codebook.numpy(), layer.codes.numpy(), (3, 3, 6, 7))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.decoded_kernel()), kernel)
    x = np.random.default_rng(1).standard_normal((3, 9, 11, 6)).astype(np.float32)
    reference = tf.nn.conv2d(x, kernel, 2, "SAME") + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)


def test_dense_decodes_exactly():
    layer = _random_pq(PQDense(5, block_size=4, n_centroids=8, activation="relu"), (None, 12))
    kernel = decode(layer.codebook.numpy(), layer.codes.numpy(), (12, 5))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.decoded_kernel()), kernel)
    x = np.random.default_rng(2).standard_normal((4, 12)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), np.maximum(x @ kernel + layer.bias.numpy(), 0), rtol=1e-5, atol=1e-5)


def test_codebook_gradient_is_the_average_over_shared_subvectors():
    layer = _random_pq(PQDense(6, block_size=4, n_centroids=5), (None, 16))
    upstream = np.random.default_rng(3).standard_normal((16, 6)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer.decoded_kernel() * upstream)
    gradient = tape.gradient(loss, layer.codebook)
    gradient = tf.convert_to_tensor(gradient).numpy()
    codes = layer.codes.numpy().ravel()
    per_subvector = kernel_to_subvectors(upstream, 4).reshape(-1, 4)
    for c in range(5):
        members = per_subvector[codes == c]
        expected = members.mean(axis=0) if len(members) else np.zeros(4)
        np.testing.assert_allclose(gradient[c], expected, rtol=1e-5, atol=1e-6)


def test_keras_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 4))
    x = PQConv2D(6, 3, block_size=9, n_centroids=4, padding="same", activation="relu", name="pqc")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = PQDense(3, block_size=2, n_centroids=2, use_bias=False, name="pqd")(x)
    model = keras.Model(inputs, outputs)
    for name, shape in (("pqc", (None, 8, 8, 4)), ("pqd", (None, 6))):
        _random_pq(model.get_layer(name), shape, seed=len(name))
    path = tmp_path / "pq.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for name in ("pqc", "pqd"):
        np.testing.assert_array_equal(loaded.get_layer(name).codes.numpy(), model.get_layer(name).codes.numpy())
        assert loaded.get_layer(name).codes.dtype == "int32"
        assert not loaded.get_layer(name).codes.trainable
    assert loaded.get_layer("pqc").get_config() == model.get_layer("pqc").get_config()


def test_block_size_must_divide_the_kernel_rows():
    with pytest.raises(TfcompressError, match=r"'odd'.*block size 4 does not divide C_in\*kh\*kw = 27"):
        PQConv2D(4, 3, block_size=4, n_centroids=4, name="odd").build((None, 8, 8, 3))


# --- EM ---------------------------------------------------------------------------------


def test_em_recovers_planted_clusters():
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((8, 4)) * 10
    truth = rng.integers(0, 8, 800)
    points = centers[truth] + 0.01 * rng.standard_normal((800, 4))
    x = rng.standard_normal((200, 4)) * np.array([1.0, 3.0, 0.5, 2.0])
    fit = activation_aware_kmeans(points, 8, gram=x.T @ x, n_iter=50, seed=1)
    # Same partition up to relabelling: every planted cluster maps to one code and back.
    pairs = set(zip(truth.tolist(), fit.codes.tolist(), strict=True))
    assert len(pairs) == 8
    for label, code in pairs:
        np.testing.assert_allclose(fit.codebook[code], centers[label], atol=0.01)


def test_whitened_e_step_equals_naive_weighted_argmin():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 3))
    gram = x.T @ x
    weights, centroids = rng.standard_normal((300, 3)), rng.standard_normal((7, 3))
    weighted = damped_gram(gram)
    residual = weights[:, None, :] - centroids[None]
    naive = np.argmin(np.einsum("nki,ij,nkj->nk", residual, weighted, residual), axis=1)
    np.testing.assert_array_equal(assign_codes(weights, centroids, gram), naive)
    # ||x~ (w - c)||^2 is the quadratic form in G.
    direct = np.sum((x @ (weights - centroids[naive]).T) ** 2)
    np.testing.assert_allclose(weighted_objective(weights, centroids, naive, gram), direct, rtol=1e-10)


def test_whitened_em_reaches_the_brute_force_optimum_on_a_small_case():
    rng = np.random.default_rng(7)
    weights = np.concatenate([rng.normal(0, 1, (4, 2)), rng.normal(6, 1, (4, 2))])
    x = rng.standard_normal((20, 2)) * np.array([5.0, 0.2])
    gram = x.T @ x
    weighted = damped_gram(gram)
    best = np.inf
    for labels in itertools.product(range(2), repeat=len(weights)):
        labels = np.array(labels)
        if len(set(labels.tolist())) < 2:
            continue
        # M-step under G: the plain mean (the whitening identity).
        codebook = np.stack([weights[labels == c].mean(axis=0) for c in range(2)])
        best = min(best, weighted_objective(weights, codebook, labels, weighted))
    fits = [activation_aware_kmeans(weights, 2, gram, n_iter=50, seed=s) for s in range(5)]
    found = min(fit.objective for fit in fits)
    np.testing.assert_allclose(found, best, rtol=1e-6)
    for fit in fits:
        np.testing.assert_allclose(
            fit.objective, weighted_objective(weights, fit.codebook, fit.codes, weighted), rtol=1e-5
        )


def test_mean_is_the_weighted_m_step():
    rng = np.random.default_rng(8)
    members = rng.standard_normal((9, 4))
    x = rng.standard_normal((30, 4))
    gram = x.T @ x

    def cost(c):
        return weighted_objective(members, c[None], np.zeros(len(members), int), gram)

    mean = members.mean(axis=0)
    for _ in range(20):
        assert cost(mean) <= cost(mean + 0.01 * rng.standard_normal(4))


def test_empty_clusters_are_split_from_the_largest():
    # Duplicated points make k-means++-free random init leave clusters empty.
    weights = np.concatenate([np.zeros((40, 2)), np.ones((40, 2)), np.full((40, 2), 2.0)])
    weights += 1e-3 * np.random.default_rng(9).standard_normal(weights.shape)
    fit = activation_aware_kmeans(weights, 6, None, n_iter=30, seed=0)
    assert len(np.unique(fit.codes)) == 6
    assert fit.objective < 1e-3 * len(weights)


def test_centroids_capped_with_a_warning():
    with pytest.warns(UserWarning, match=r"256 centroids capped at 25"):
        assert capped_centroids(256, 100, "layer 'x'") == 25
    with pytest.raises(TfcompressError, match="too few"):
        capped_centroids(4, 6, "layer 'x'")


def test_conv_gram_equals_explicit_im2col_blocks():
    rng = np.random.default_rng(10)
    inputs = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    layer = keras.layers.Conv2D(3, 3, strides=2, padding="same")
    gram = conv_input_gram(inputs, layer, 18)
    padded = np.pad(inputs, ((0, 0), (1, 1), (0, 1), (0, 0)))  # TF "SAME" for 7x6, stride 2
    expected = np.zeros((18, 18))
    for n, i, j in itertools.product(range(2), range(4), range(3)):
        patch = padded[n, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]  # (kh, kw, C_in)
        rows = np.transpose(patch, (2, 0, 1)).reshape(-1, 18)  # rows (C_in, kh, kw), blocks of 18
        expected += rows.T @ rows
    np.testing.assert_allclose(gram, expected, rtol=1e-4, atol=1e-3)
    dense_inputs = rng.standard_normal((5, 8))
    blocks = dense_inputs.reshape(-1, 4)
    np.testing.assert_allclose(dense_input_gram(dense_inputs, 4), blocks.T @ blocks, rtol=1e-5)


# --- size -------------------------------------------------------------------------------


def test_size_report_uses_the_papers_formula():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="first")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = PQConv2D(16, 3, block_size=9, n_centroids=32, name="pq")(x)
    model = keras.Model(inputs, x)
    report = size_report(model)
    rows = {layer.name: layer for layer in report.layers}
    assert rows["first"].compressed_bytes == 3 * 3 * 4 * 8 * 4
    assert rows["bn"].compressed_bytes == 4 * 8 * 4
    subvectors = 8 * 16  # (C_in*9/9) blocks x C_out
    expected_bits = subvectors * 5 + 32 * 9 * 16 + 16 * 32
    assert rows["pq"].compressed_bytes == expected_bits / 8
    assert rows["pq"].float_bytes == (3 * 3 * 8 * 16 + 16) * 4
    assert report.compressed_bytes == sum(r.compressed_bytes for r in report.layers)
    assert "| **total** |" in report.markdown()
