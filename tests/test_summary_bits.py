"""``summary`` counts PQ codes, shared-weight streams and sparse kernels as the file stores them."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tfcompress.cli import main
from tfcompress.pq import PQConv2D
from tfcompress.pruning import deep_compress
from tfcompress.pruning.lowering import encoded_layer
from tfcompress.summary import summarize


def _pq_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = PQConv2D(6, 3, block_size=9, n_centroids=4, padding="same", name="pq")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def _sparse_model() -> keras.Model:
    inputs = keras.Input((5, 2, 2))
    x = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")(inputs)  # 4 weights, no zeros
    x = keras.layers.Flatten()(x)  # 20 features
    model = keras.Model(inputs, keras.layers.Dense(4, name="dense")(x))
    model.get_layer("conv").kernel.assign(np.ones((1, 1, 2, 2), np.float32))
    dense = np.zeros((20, 4), np.float32)
    dense[:4] = 1.0  # 16 nonzeros of 80 (80% zeros)
    model.get_layer("dense").kernel.assign(dense)
    return model


def test_pq_layer_counts_codes_and_codebook():
    layers = {layer.name: layer for layer in summarize(_pq_model()).layers}
    # 3*3*3*6 = 162 weights in 18 subvectors of d=9: 18 codes of log2(4) = 2 bits, codebook 4*9 fp16.
    kernel_bits = 18 * 2 + 4 * 9 * 16
    assert layers["pq"].params == 162 + 6
    assert layers["pq"].kernel_bits == pytest.approx(kernel_bits / 162)
    assert layers["pq"].memory_bytes == pytest.approx((kernel_bits + 6 * 32) / 8)
    assert layers["head"].kernel_bits == 32 and layers["head"].memory_bytes == (12 + 2) * 4


def test_sparse_plain_kernel_counts_tflite_sparse_format():
    layers = {layer.name: layer for layer in summarize(_sparse_model()).layers}
    # File layout [4, 20]: 16 nonzeros at 32 bits + a uint8 index each, 4 + 1 uint8 segment pointers.
    dense_bits = 16 * (32 + 8) + 5 * 8
    assert layers["dense"].kernel_bits == pytest.approx(dense_bits / 80)
    assert layers["dense"].memory_bytes == pytest.approx(dense_bits / 8 + 4 * 4)
    assert layers["conv"].kernel_bits == 32  # 0% zeros: stays dense in the file
    inputs = keras.Input((20,))
    unpruned = keras.Model(inputs, keras.layers.Dense(4, name="dense")(inputs))
    assert summarize(unpruned).layers[0].kernel_bits == 32


def test_shared_layers_count_their_huffman_streams():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    shared = deep_compress(model, conv_bits=4, dense_bits=4)
    result = summarize(shared)
    layers = {layer.name: layer for layer in result.layers}
    for name, bias in (("conv", 8), ("head", 3)):
        assert layers[name].memory_bytes == encoded_layer(shared.get_layer(name)).nbytes + 4 * bias
    assert layers["conv"].kernel_bits < 8  # 4-bit indices, Huffman-coded, plus the codebook
    assert result.compression_ratio > 2


def test_summary_command_reports_the_pq_compression(tmp_path, capsys):
    path = tmp_path / "pq.keras"
    _pq_model().save(path)
    assert main(["summary", str(path), "--json", str(tmp_path / "s.json")]) == 0
    assert "x smaller" in capsys.readouterr().out
    summary = json.loads((tmp_path / "s.json").read_text())
    pq = next(layer for layer in summary["layers"] if layer["name"] == "pq")
    assert pq["kernel_bits"] == pytest.approx((18 * 2 + 4 * 9 * 16) / 162)
    assert summary["compression_ratio"] > 1.5
